#include "stored/mvcc/kv_hash.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <rocksdb/iterator.h>

#include "etcd/mvccpb/kv.pb.h"
#include "common/crc32c.h"
#include "stored/mvcc/apply_command.h"
#include "stored/mvcc/lease_records.h"
#include "stored/mvcc/storage_format.h"
#include "stored/mvcc/store_view.h"

namespace rusd::stored {
namespace {

constexpr char kKeyBucketName[] = "key";

// Feeds records in etcd's form to the CRC.
class EtcdRecordHasher {
 public:
  explicit EtcdRecordHasher(uint32_t crc) : crc_(crc) {}

  void Write(std::string_view bytes) {
    crc_ = Crc32cExtend(crc_, bytes.data(), bytes.size());
  }

  // etcd's bbolt key: main (8, BE) '_' sub (8, BE) ['t'].
  void WriteRevisionKey(int64_t main, int64_t sub, bool tombstone) {
    char key[18];
    const auto m = static_cast<uint64_t>(main);
    const auto s = static_cast<uint64_t>(sub);
    for (int i = 0; i < 8; ++i) {
      key[i] = static_cast<char>(m >> (56 - 8 * i));
      key[9 + i] = static_cast<char>(s >> (56 - 8 * i));
    }
    key[8] = '_';
    key[17] = 't';
    Write(std::string_view(key, tombstone ? 18 : 17));
  }

  // A put: `stored` is rusd's history value ('p' + KeyValue without its key); etcd stores
  // the KeyValue with the key.
  Status WritePut(std::string_view user_key, int64_t main, int64_t sub, std::string_view stored) {
    if (stored.empty() || stored[0] != format::kPutMark ||
        !kv_.ParseFromArray(stored.data() + 1, static_cast<int>(stored.size() - 1))) {
      return Status::Internal("mvcc: malformed history record in hash");
    }
    kv_.set_key(std::string(user_key));
    WriteRevisionKey(main, sub, /*tombstone=*/false);
    // C++ protobuf serializes in field-number order and omits proto3 zero fields, as
    // gogoproto's Marshal does: the bytes are etcd's.
    kv_.SerializeToString(&buffer_);
    Write(buffer_);
    return Status::Ok();
  }

  // A tombstone: etcd stores KeyValue{Key: key} under the 't'-marked revision.
  void WriteTombstone(std::string_view user_key, int64_t main, int64_t sub) {
    kv_.Clear();
    kv_.set_key(std::string(user_key));
    WriteRevisionKey(main, sub, /*tombstone=*/true);
    kv_.SerializeToString(&buffer_);
    Write(buffer_);
  }

  uint32_t crc() const { return crc_; }

 private:
  uint32_t crc_;
  mvccpb::KeyValue kv_;
  std::string buffer_;
};

// A record at or below the compact revision that etcd's bucket still holds.
struct KeptRecord {
  int64_t main = 0;
  int64_t sub = 0;
  std::string key;
  // The key changed in (compact revision, R]: counted only when no key is live at R.
  bool superseded = false;
};

// Streams the HashKV records of `revision` into `hasher` (see kv_hash.h for which).
Status HashRecords(StoreView& view, int64_t revision, int64_t compacted,
                   EtcdRecordHasher& hasher) {
  hasher.Write(kKeyBucketName);
  if (revision <= 0) return Status::Ok();  // etcd: no record is below revision{main: rev+1}
  const Families& fam = view.families();

  // 1. The records at or below `compacted` that etcd keeps and counts: one walk of the
  //    history family, one key's records (ascending revisions) at a time.
  std::vector<KeptRecord> kept;
  bool any_live = false;  // some key's newest record <= revision is a put (Keep non-empty)
  if (compacted >= 0) {
    std::unique_ptr<rocksdb::Iterator> it = view.NewIterator(fam.history);
    std::string key;
    std::string current_key;
    bool have_key = false;
    bool newest_le_c_put = false;  // of current_key: its newest record <= compacted is a put
    KeptRecord newest_le_c;
    bool has_le_c = false;
    bool changed_after_c = false;  // a record in (compacted, revision]
    bool newest_le_rev_put = false;
    auto finish_key = [&]() {
      if (!have_key) return;
      if (newest_le_rev_put) any_live = true;
      if (has_le_c && newest_le_c_put) {
        newest_le_c.superseded = changed_after_c;
        kept.push_back(newest_le_c);
      }
    };
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      int64_t main = 0;
      int64_t sub = 0;
      if (!format::DecodeHistoryKey(std::string_view(it->key().data(), it->key().size()), &key,
                                    &main, &sub) ||
          it->value().empty()) {
        return Status::Internal("mvcc: malformed history key in hash");
      }
      if (!have_key || key != current_key) {
        finish_key();
        current_key = key;
        have_key = true;
        has_le_c = false;
        newest_le_c_put = false;
        changed_after_c = false;
        newest_le_rev_put = false;
      }
      if (main > revision) continue;
      const bool put = it->value()[0] == format::kPutMark;
      newest_le_rev_put = put;
      if (main <= compacted) {
        has_le_c = true;
        newest_le_c_put = put;
        newest_le_c.main = main;
        newest_le_c.sub = sub;
        newest_le_c.key = current_key;
      } else {
        changed_after_c = true;
      }
    }
    RUSD_RETURN_IF_ERROR(FromRocks(it->status(), "hash: history scan"));
    finish_key();
  }
  // etcd: `if lower.GreaterThan(kr) && len(keep) > 0 { skip unless kept }`.
  std::vector<KeptRecord> counted;
  counted.reserve(kept.size());
  for (KeptRecord& r : kept) {
    if (!r.superseded || !any_live) counted.push_back(std::move(r));
  }
  std::sort(counted.begin(), counted.end(), [](const KeptRecord& a, const KeptRecord& b) {
    return std::tie(a.main, a.sub) < std::tie(b.main, b.sub);
  });
  std::string value;
  for (const KeptRecord& r : counted) {
    rocksdb::Status s = view.Get(fam.history, format::HistoryKey(r.key, r.main, r.sub), &value);
    RUSD_RETURN_IF_ERROR(FromRocks(s, "hash: history read"));
    RUSD_RETURN_IF_ERROR(hasher.WritePut(r.key, r.main, r.sub, value));
  }

  // 2. Every record in (compacted, revision], in revision order from the revlog.
  std::unique_ptr<rocksdb::Iterator> log = view.NewIterator(fam.revlog);
  const int64_t first = std::max<int64_t>(compacted + 1, 0);
  for (log->Seek(format::EncodeRevision(first, 0)); log->Valid(); log->Next()) {
    int64_t main = 0;
    int64_t sub = 0;
    if (!format::DecodeRevision(std::string_view(log->key().data(), log->key().size()), &main,
                                &sub) ||
        log->value().empty()) {
      return Status::Internal("mvcc: malformed revlog record in hash");
    }
    if (main > revision) break;
    const std::string_view user_key(log->value().data() + 1, log->value().size() - 1);
    if (log->value()[0] == format::kTombstoneMark) {
      hasher.WriteTombstone(user_key, main, sub);
      continue;
    }
    rocksdb::Status s = view.Get(fam.history, format::HistoryKey(user_key, main, sub), &value);
    RUSD_RETURN_IF_ERROR(FromRocks(s, "hash: history read"));
    RUSD_RETURN_IF_ERROR(hasher.WritePut(user_key, main, sub, value));
  }
  return FromRocks(log->status(), "hash: revlog scan");
}

}  // namespace

Result<uint32_t> ComputeHashKv(StoreView& view, int64_t revision, int64_t compacted) {
  EtcdRecordHasher hasher(0);
  RUSD_RETURN_IF_ERROR(HashRecords(view, revision, compacted, hasher));
  return hasher.crc();
}

Result<uint32_t> ComputeStateHash(StoreView& view, int64_t current, int64_t compacted) {
  EtcdRecordHasher hasher(0);
  RUSD_RETURN_IF_ERROR(HashRecords(view, current, compacted, hasher));
  // The leases and their attachments, as stored (meta keys "lease/..." and "leasekey/...").
  std::unique_ptr<rocksdb::Iterator> it = view.NewIterator(view.families().meta);
  for (it->Seek(lease_records::kLeasePrefix); it->Valid(); it->Next()) {
    const std::string_view k(it->key().data(), it->key().size());
    if (!k.starts_with(lease_records::kLeasePrefix) &&
        !k.starts_with(lease_records::kAttachmentPrefix)) {
      if (k > std::string_view(lease_records::kAttachmentPrefix)) break;
      continue;
    }
    hasher.Write(k);
    hasher.Write(std::string_view(it->value().data(), it->value().size()));
  }
  RUSD_RETURN_IF_ERROR(FromRocks(it->status(), "hash: lease scan"));
  return hasher.crc();
}

}  // namespace rusd::stored
