#include "supervisor/toml_reader.h"

#include <gtest/gtest.h>

namespace rusd::supervisor {
namespace {

TEST(TomlReader, ParsesTablesStringsIntegersBooleansArraysAndComments) {
  auto doc = ParseToml(R"(# a comment
top = "root value"

[server]
name = "node-1"   # trailing comment
data-dir = 'C:\literal\path'
escaped = "tab\there \"q\" \u00e9"
enabled = true
off = false

[limits]
max-txn-ops = 1_024
negative = -5
urls = [
  "http://a:1",  # first
  "http://b:2",
]
empty = []
)", "test.toml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->tables.at("").at("top").string_value, "root value");
  const auto& server = doc->tables.at("server");
  EXPECT_EQ(server.at("name").string_value, "node-1");
  EXPECT_EQ(server.at("name").line, 5);
  EXPECT_EQ(server.at("data-dir").string_value, "C:\\literal\\path");
  EXPECT_EQ(server.at("escaped").string_value, "tab\there \"q\" \xC3\xA9");
  EXPECT_TRUE(server.at("enabled").boolean_value);
  EXPECT_EQ(server.at("off").kind, TomlValue::Kind::kBoolean);
  EXPECT_FALSE(server.at("off").boolean_value);
  const auto& limits = doc->tables.at("limits");
  EXPECT_EQ(limits.at("max-txn-ops").integer_value, 1024);
  EXPECT_EQ(limits.at("negative").integer_value, -5);
  EXPECT_EQ(limits.at("urls").array_value, (std::vector<std::string>{"http://a:1", "http://b:2"}));
  EXPECT_EQ(limits.at("empty").kind, TomlValue::Kind::kStringArray);
  EXPECT_TRUE(limits.at("empty").array_value.empty());
  EXPECT_EQ(doc->table_lines.at("limits"), 11);
}

// Each bad input must fail with the file name and the line of the mistake.
struct BadInput {
  const char* text;
  const char* expected_prefix;
  const char* expected_fragment;
};

class TomlReaderErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(TomlReaderErrors, ReportsFileAndLine) {
  auto doc = ParseToml(GetParam().text, "bad.toml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(doc.status().message().rfind(GetParam().expected_prefix, 0), 0u)
      << doc.status().message();
  EXPECT_NE(doc.status().message().find(GetParam().expected_fragment), std::string::npos)
      << doc.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    All, TomlReaderErrors,
    ::testing::Values(
        BadInput{"[server]\nname = \"unterminated\n", "bad.toml:2:", "unterminated string"},
        BadInput{"a = 1\nb = 2\n\nc 3\n", "bad.toml:4:", "expected '='"},
        BadInput{"[server\nx=1\n", "bad.toml:1:", "expected ']'"},
        BadInput{"x = 1.5\n", "bad.toml:1:", "invalid value"},
        BadInput{"x = 1\nx = 2\n", "bad.toml:2:", "defined twice (first on line 1)"},
        BadInput{"[a]\n[a]\n", "bad.toml:2:", "defined twice"},
        BadInput{"x = [\"a\", 1]\n", "bad.toml:1:", "only strings"},
        BadInput{"\n\nx = [\"a\",\n \"b\"\n", "bad.toml:", "unterminated array (opened on line 3)"},
        BadInput{"x = \"a\" y = 2\n", "bad.toml:1:", "one key = value per line"},
        BadInput{"x = { a = 1 }\n", "bad.toml:1:", "inline tables"},
        BadInput{"x =\n", "bad.toml:1:", "missing value"},
        BadInput{"x = \"\\q\"\n", "bad.toml:1:", "invalid escape"},
        BadInput{"x = 99999999999999999999\n", "bad.toml:1:", "out of range"},
        BadInput{"[[servers]]\n", "bad.toml:1:", "arrays of tables"},
        BadInput{"a.b = 1\n", "bad.toml:1:", "dotted keys"},
        // Found by tests/fuzz/toml_config: these produced invalid UTF-8, which protobuf
        // string fields (member names, URLs) refuse later, far from the config file.
        BadInput{"x = \"\\uD800\"\n", "bad.toml:1:", "not a Unicode scalar value"},
        BadInput{"x = \"\\UFFFFFFFF\"\n", "bad.toml:1:", "not a Unicode scalar value"},
        BadInput{"x = \"\\U00110000\"\n", "bad.toml:1:", "not a Unicode scalar value"}));

TEST(TomlReader, MissingFileIsAnError) {
  auto doc = ReadTomlFile("/nonexistent/rusd.toml");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("/nonexistent/rusd.toml"), std::string::npos);
}

}  // namespace
}  // namespace rusd::supervisor

namespace rusd::supervisor {
namespace {

TEST(TomlReader, AcceptsWindowsLineEndings) {
  auto doc = ParseToml("[server]\r\nname = \"a\"\r\n# c\r\nx = [\"u\",\r\n \"v\"]\r\n", "crlf.toml");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->tables.at("server").at("name").string_value, "a");
  EXPECT_EQ(doc->tables.at("server").at("x").array_value.size(), 2u);
  EXPECT_EQ(doc->tables.at("server").at("x").line, 4);
}

}  // namespace
}  // namespace rusd::supervisor
