// The mount's view of a volume token's scope, at one place: the MetaApi the file-system logic
// calls. A subtree token's root directory is shown as inode 1 (FUSE_ROOT_ID): the wrapper swaps
// inode numbers 1 and `root_ino` in every inode field of every request and reply (fields
// `ino`, `parent`, `*_ino`, `*_parent`, found by protobuf reflection, nested messages
// included), so the kernel, the FileSystem's caches and st_ino all see 1 for the mount's root.
// A read-only token's mount refuses every changing call with EROFS before it leaves the host
// (the kernel's "ro" mount refuses most writes earlier; the server refuses them too).
#ifndef NIGHFS_METADATA_CLIENT_SCOPED_META_H_
#define NIGHFS_METADATA_CLIENT_SCOPED_META_H_

#include <cstdint>
#include <memory>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "metadata_client/meta_api.h"

namespace nighfs {

// Field conventions of proto/meta.proto that both ends of a token's scope apply (the server's
// checks in meta/auth.cc and this wrapper), so a new request is covered by naming its fields:
// an inode number is a uint64 field named `ino`, `parent`, `*_ino` or `*_parent`;
bool IsInodeField(const google::protobuf::FieldDescriptor* field);
// a call changes the volume when its request has `request_id`, except Mount (which carries one
// so a retry opens no second session, but changes no file).
bool IsMutation(std::string_view method, const google::protobuf::Message& request);

// `inner` must outlive the result. root_ino 1 and !read_only give a plain forwarder.
std::unique_ptr<MetaApi> NewScopedMetaApi(MetaApi* inner, uint64_t root_ino, bool read_only);

// Swaps inode numbers 1 and `root_ino` in every inode field of `message` (see above).
void SwapRootIno(google::protobuf::Message* message, uint64_t root_ino);

}  // namespace nighfs

#endif  // NIGHFS_METADATA_CLIENT_SCOPED_META_H_
