#include "metadata_client/scoped_meta.h"

#include <cerrno>
#include <string>

#include "absl/strings/match.h"
#include "common/errno_status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace nighfs {
namespace {

using google::protobuf::FieldDescriptor;

class ScopedMetaApi : public MetaApi {
 public:
  ScopedMetaApi(MetaApi* inner, uint64_t root_ino, bool read_only)
      : inner_(inner), root_ino_(root_ino), read_only_(read_only) {}

#define NIGHFS_SCOPED_META_CALL(M, Req, Resp)                                        \
  absl::StatusOr<pb::Resp> M(const pb::Req& request) override {                      \
    if (read_only_ && IsMutation(#M, request)) {                                        \
      return PosixError(EROFS, "read-only token: the volume is mounted read-only");  \
    }                                                                                \
    if (root_ino_ == 1) return inner_->M(request);                                   \
    pb::Req mapped = request;                                                        \
    SwapRootIno(&mapped, root_ino_);                                                 \
    absl::StatusOr<pb::Resp> r = inner_->M(mapped);                                  \
    if (r.ok()) SwapRootIno(&*r, root_ino_);                                         \
    return r;                                                                        \
  }
  NIGHFS_META_METHODS(NIGHFS_SCOPED_META_CALL)
#undef NIGHFS_SCOPED_META_CALL

 private:
  MetaApi* const inner_;
  const uint64_t root_ino_;
  const bool read_only_;
};

}  // namespace

bool IsInodeField(const FieldDescriptor* f) {
  if (f->type() != FieldDescriptor::TYPE_UINT64) return false;
  const std::string& n = f->name();
  return n == "ino" || n == "parent" || absl::EndsWith(n, "_ino") || absl::EndsWith(n, "_parent");
}

bool IsMutation(std::string_view method, const google::protobuf::Message& request) {
  return method != "Mount" && request.GetDescriptor()->FindFieldByName("request_id") != nullptr;
}

void SwapRootIno(google::protobuf::Message* message, uint64_t root_ino) {
  if (root_ino == 1) return;
  const google::protobuf::Descriptor* d = message->GetDescriptor();
  const google::protobuf::Reflection* r = message->GetReflection();
  auto swap = [root_ino](uint64_t v) { return v == 1 ? root_ino : v == root_ino ? 1 : v; };
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(*message, f); ++j) {
          SwapRootIno(r->MutableRepeatedMessage(message, f, j), root_ino);
        }
      } else if (r->HasField(*message, f)) {
        SwapRootIno(r->MutableMessage(message, f), root_ino);
      }
    } else if (IsInodeField(f)) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(*message, f); ++j) {
          r->SetRepeatedUInt64(message, f, j, swap(r->GetRepeatedUInt64(*message, f, j)));
        }
      } else {
        r->SetUInt64(message, f, swap(r->GetUInt64(*message, f)));
      }
    }
  }
}

std::unique_ptr<MetaApi> NewScopedMetaApi(MetaApi* inner, uint64_t root_ino, bool read_only) {
  return std::make_unique<ScopedMetaApi>(inner, root_ino, read_only);
}

}  // namespace nighfs
