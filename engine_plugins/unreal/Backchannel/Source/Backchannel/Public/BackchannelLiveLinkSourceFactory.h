// Live Link panel > Source > Backchannel: adds the source (endpoints from Project Settings > Plugins > Backchannel).
#pragma once

#include "CoreMinimal.h"
#include "LiveLinkSourceFactory.h"
#include "BackchannelLiveLinkSourceFactory.generated.h"

UCLASS()
class BACKCHANNEL_API UBackchannelLiveLinkSourceFactory : public ULiveLinkSourceFactory
{
	GENERATED_BODY()

public:
	virtual FText GetSourceDisplayName() const override;
	virtual FText GetSourceTooltip() const override;
	virtual EMenuType GetMenuType() const override { return EMenuType::MenuEntry; }
	virtual TSharedPtr<ILiveLinkSource> CreateSource(const FString& ConnectionString) const override;
};
