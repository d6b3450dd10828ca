// MetaServiceImpl's proxy groups (issue 13): their configuration (admin) and what a mount
// routes over (GetVolumeRoutes). See proto/meta.proto, "proxy groups".
#include "meta/meta_service_impl.h"

namespace nighfs::meta::internal {

absl::StatusOr<pb::ProxyGroupResponse> MetaServiceImpl::CreateProxyGroup(const pb::CreateProxyGroupRequest& req) {
  return absl::UnimplementedError("CreateProxyGroup is not implemented yet");
}

absl::StatusOr<pb::ProxyGroupResponse> MetaServiceImpl::UpdateProxyGroup(const pb::UpdateProxyGroupRequest& req) {
  return absl::UnimplementedError("UpdateProxyGroup is not implemented yet");
}

absl::StatusOr<pb::ListProxyGroupsResponse> MetaServiceImpl::ListProxyGroups(const pb::ListProxyGroupsRequest& req) {
  return absl::UnimplementedError("ListProxyGroups is not implemented yet");
}

absl::StatusOr<pb::DeleteProxyGroupResponse> MetaServiceImpl::DeleteProxyGroup(const pb::DeleteProxyGroupRequest& req) {
  return absl::UnimplementedError("DeleteProxyGroup is not implemented yet");
}

absl::StatusOr<pb::CreateVolumeProxyGroupResponse> MetaServiceImpl::CreateVolumeProxyGroup(const pb::CreateVolumeProxyGroupRequest& req) {
  return absl::UnimplementedError("CreateVolumeProxyGroup is not implemented yet");
}

absl::StatusOr<pb::ListVolumeProxyGroupsResponse> MetaServiceImpl::ListVolumeProxyGroups(const pb::ListVolumeProxyGroupsRequest& req) {
  return absl::UnimplementedError("ListVolumeProxyGroups is not implemented yet");
}

absl::StatusOr<pb::DeleteVolumeProxyGroupResponse> MetaServiceImpl::DeleteVolumeProxyGroup(const pb::DeleteVolumeProxyGroupRequest& req) {
  return absl::UnimplementedError("DeleteVolumeProxyGroup is not implemented yet");
}

absl::StatusOr<pb::GetVolumeRoutesResponse> MetaServiceImpl::GetVolumeRoutes(const pb::GetVolumeRoutesRequest& req) {
  return absl::UnimplementedError("GetVolumeRoutes is not implemented yet");
}

}  // namespace nighfs::meta::internal
