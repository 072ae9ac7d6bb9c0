// Every session of the shared connection as a Live Link subject of the Basic role: the 52 ARKit curves under the
// names Live Link Face uses (so MetaHuman's mh_arkit_mapping_pose drives the face with no extra asset), the head and
// eye curves in the same convention, and Speaking / Listening (0 or 1, the generator's state; also the "State"
// string in the frame's metadata). Frames are blended to the engine's tick in Update().
#pragma once

#include "CoreMinimal.h"
#include "ILiveLinkSource.h"
#include "Backchannel/Client.h"

#include <string>
#include <vector>

class ILiveLinkClient;

class BACKCHANNEL_API FBackchannelLiveLinkSource : public ILiveLinkSource
{
public:
	FBackchannelLiveLinkSource();
	virtual ~FBackchannelLiveLinkSource();

	/** How many exist (the subsystem adds one only where there is none). */
	static int32 Instances();

	/** The property names a subject carries, in order: 52 ARKit, 9 head/eye, Speaking, Listening. */
	static const TArray<FName>& PropertyNames();

	//~ ILiveLinkSource
	virtual void ReceiveClient(ILiveLinkClient* InClient, FGuid InSourceGuid) override;
	virtual void Update() override;
	virtual bool IsSourceStillValid() const override { return Core.IsValid(); }
	virtual bool RequestSourceShutdown() override;
	virtual FText GetSourceType() const override;
	virtual FText GetSourceMachineName() const override;
	virtual FText GetSourceStatus() const override;

private:
	ILiveLinkClient* LiveLink = nullptr;
	FGuid SourceGuid;
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Core;
	TSet<FName> Subjects;  // those whose static data was pushed
	std::vector<std::string> SessionNames;  // reused by every Update
	double LastUpdate = 0.0;
	FString Endpoint;
};
