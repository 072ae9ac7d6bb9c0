#include "BackchannelLiveLinkSourceFactory.h"

#include "BackchannelLiveLinkSource.h"

#define LOCTEXT_NAMESPACE "BackchannelLiveLink"

FText UBackchannelLiveLinkSourceFactory::GetSourceDisplayName() const
{
	return LOCTEXT("DisplayName", "Backchannel");
}

FText UBackchannelLiveLinkSourceFactory::GetSourceTooltip() const
{
	return LOCTEXT("Tooltip", "Faces from a Backchannel worker: one subject per session (ARKit curves, head, eyes, state)");
}

TSharedPtr<ILiveLinkSource> UBackchannelLiveLinkSourceFactory::CreateSource(const FString& ConnectionString) const
{
	// one connection for every session: the endpoints are the project's, so a preset needs no connection string
	return MakeShared<FBackchannelLiveLinkSource>();
}

#undef LOCTEXT_NAMESPACE
