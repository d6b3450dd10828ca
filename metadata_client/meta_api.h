// The metadata service as a C++ interface. The server (meta::MetaService) implements it, the
// mount's HTTP client implements it, and tests drive the file-system logic against the server
// object directly, without HTTP. NIGHFS_META_METHODS lists every call once.
#ifndef NIGHFS_METADATA_CLIENT_META_API_H_
#define NIGHFS_METADATA_CLIENT_META_API_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "meta.pb.h"

namespace nighfs {

namespace pb = ::nighfs::meta::v1;

// X(Method, Request, Response)
#define NIGHFS_META_METHODS(X)                                  \
  X(CreateVolume, CreateVolumeRequest, CreateVolumeResponse)    \
  X(ListVolumes, ListVolumesRequest, ListVolumesResponse)       \
  X(DeleteVolume, DeleteVolumeRequest, DeleteVolumeResponse)    \
  X(Mount, MountRequest, MountResponse)                         \
  X(Heartbeat, HeartbeatRequest, HeartbeatResponse)             \
  X(Unmount, UnmountRequest, UnmountResponse)                   \
  X(Lookup, LookupRequest, EntryResponse)                       \
  X(GetAttr, GetAttrRequest, AttrResponse)                      \
  X(SetAttr, SetAttrRequest, AttrResponse)                      \
  X(Mknod, MknodRequest, EntryResponse)                         \
  X(Mkdir, MkdirRequest, EntryResponse)                         \
  X(Symlink, SymlinkRequest, EntryResponse)                     \
  X(Link, LinkRequest, EntryResponse)                           \
  X(Unlink, UnlinkRequest, UnlinkResponse)                      \
  X(Rmdir, RmdirRequest, RmdirResponse)                         \
  X(Rename, RenameRequest, RenameResponse)                      \
  X(ReadDir, ReadDirRequest, ReadDirResponse)                   \
  X(Readlink, ReadlinkRequest, ReadlinkResponse)                \
  X(GetBlocks, GetBlocksRequest, GetBlocksResponse)             \
  X(AllocBlockIds, AllocBlockIdsRequest, AllocBlockIdsResponse) \
  X(CommitBlocks, CommitBlocksRequest, CommitBlocksResponse)    \
  X(Release, ReleaseRequest, ReleaseResponse)                   \
  X(SetXattr, SetXattrRequest, SetXattrResponse)                \
  X(GetXattr, GetXattrRequest, GetXattrResponse)                \
  X(ListXattr, ListXattrRequest, ListXattrResponse)             \
  X(RemoveXattr, RemoveXattrRequest, RemoveXattrResponse)       \
  X(StatFs, StatFsRequest, StatFsResponse)                      \
  X(Sync, SyncRequest, SyncResponse)                            \
  X(CreateToken, CreateTokenRequest, CreateTokenResponse)       \
  X(ListTokens, ListTokensRequest, ListTokensResponse)          \
  X(RevokeToken, RevokeTokenRequest, RevokeTokenResponse)       \
  X(AuthorizeBlockAccess, AuthorizeBlockAccessRequest, AuthorizeBlockAccessResponse) \
  X(DeadBlocks, DeadBlocksRequest, DeadBlocksResponse)                                       \
  X(CreateProxyGroup, CreateProxyGroupRequest, ProxyGroupResponse)                           \
  X(UpdateProxyGroup, UpdateProxyGroupRequest, ProxyGroupResponse)                           \
  X(ListProxyGroups, ListProxyGroupsRequest, ListProxyGroupsResponse)                        \
  X(DeleteProxyGroup, DeleteProxyGroupRequest, DeleteProxyGroupResponse)                     \
  X(CreateVolumeProxyGroup, CreateVolumeProxyGroupRequest, CreateVolumeProxyGroupResponse)   \
  X(ListVolumeProxyGroups, ListVolumeProxyGroupsRequest, ListVolumeProxyGroupsResponse)      \
  X(DeleteVolumeProxyGroup, DeleteVolumeProxyGroupRequest, DeleteVolumeProxyGroupResponse)   \
  X(GetVolumeRoutes, GetVolumeRoutesRequest, GetVolumeRoutesResponse)

// Every method is safe to call from many threads at once. File-system failures carry their
// errno (common/errno_status.h): ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, EINVAL, ENODATA...
class MetaApi {
 public:
  virtual ~MetaApi() = default;
#define NIGHFS_DECLARE_META_METHOD(M, Req, Resp) \
  virtual absl::StatusOr<pb::Resp> M(const pb::Req& request) = 0;
  NIGHFS_META_METHODS(NIGHFS_DECLARE_META_METHOD)
#undef NIGHFS_DECLARE_META_METHOD
};

// The full method path of a MetaService call, e.g. "/nighfs.meta.v1.MetaService/Lookup".
std::string MetaMethodPath(std::string_view method);

}  // namespace nighfs

#endif  // NIGHFS_METADATA_CLIENT_META_API_H_
