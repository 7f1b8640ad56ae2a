#include "stored/mvcc/lease_records.h"

#include "rusd/lease.pb.h"
#include "stored/mvcc/storage_format.h"

namespace rusd::stored::lease_records {

std::string LeaseKey(int64_t id) {
  std::string k(kLeasePrefix);
  k.append(format::EncodeU64(static_cast<uint64_t>(id)));
  return k;
}

std::string AttachmentPrefix(int64_t id) {
  std::string k(kAttachmentPrefix);
  k.append(format::EncodeU64(static_cast<uint64_t>(id)));
  return k;
}

std::string AttachmentKey(int64_t id, std::string_view user_key) {
  std::string k = AttachmentPrefix(id);
  k.append(user_key);
  return k;
}

Result<bool> Get(StoreView& view, int64_t id, internal::LeaseRecord* out) {
  std::string bytes;
  rocksdb::Status st = view.Get(view.families().meta, LeaseKey(id), &bytes);
  if (st.IsNotFound()) return false;
  if (!st.ok()) return Status::IoError("mvcc: read lease: " + st.ToString());
  if (!out->ParseFromString(bytes)) return Status::DataLoss("mvcc: malformed lease record");
  return true;
}

namespace {

// Calls fn(key suffix after `prefix`, value) for every meta record under `prefix`.
template <typename Fn>
Status ScanPrefix(StoreView& view, const std::string& prefix, Fn&& fn) {
  std::unique_ptr<rocksdb::Iterator> it = view.NewIterator(view.families().meta);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(prefix)) break;
    k.remove_prefix(prefix.size());
    RUSD_RETURN_IF_ERROR(fn(std::string_view(k.data(), k.size()),
                            std::string_view(it->value().data(), it->value().size())));
  }
  if (!it->status().ok()) return Status::IoError("mvcc: scan leases: " + it->status().ToString());
  return Status::Ok();
}

}  // namespace

Status AttachedKeys(StoreView& view, int64_t id, std::vector<std::string>* keys) {
  return ScanPrefix(view, AttachmentPrefix(id), [&](std::string_view key, std::string_view) {
    keys->emplace_back(key);
    return Status::Ok();
  });
}

Status All(StoreView& view, std::vector<internal::LeaseRecord>* out) {
  return ScanPrefix(view, kLeasePrefix, [&](std::string_view, std::string_view value) {
    if (!out->emplace_back().ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return Status::DataLoss("mvcc: malformed lease record");
    }
    return Status::Ok();
  });
}

}  // namespace rusd::stored::lease_records
