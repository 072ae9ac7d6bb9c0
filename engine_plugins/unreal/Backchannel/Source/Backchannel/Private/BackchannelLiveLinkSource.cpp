#include "BackchannelLiveLinkSource.h"

#include "BackchannelSettings.h"
#include "BackchannelSubsystem.h"
#include "ILiveLinkClient.h"
#include "LiveLinkTypes.h"
#include "Roles/LiveLinkBasicRole.h"
#include "Roles/LiveLinkBasicTypes.h"

#include <atomic>

#define LOCTEXT_NAMESPACE "BackchannelLiveLink"

namespace
{
	std::atomic<int32> SourceCount{0};
}

int32 FBackchannelLiveLinkSource::Instances()
{
	return SourceCount.load();
}

FBackchannelLiveLinkSource::~FBackchannelLiveLinkSource()
{
	--SourceCount;
}

FBackchannelLiveLinkSource::FBackchannelLiveLinkSource()
{
	++SourceCount;
	if (UBackchannelSubsystem* Subsystem = UBackchannelSubsystem::Get())
	{
		Core = Subsystem->GetClient();
	}
	Endpoint = GetDefault<UBackchannelSettings>()->MotionEndpoint;
}

const TArray<FName>& FBackchannelLiveLinkSource::PropertyNames()
{
	static const TArray<FName> Names = []()
	{
		TArray<FName> Out;
		for (int32 Index = 0; Index < backchannel::kLiveLinkValueCount; ++Index)
		{
			Out.Add(FName(backchannel::live_link_property_name(Index)));
		}
		return Out;
	}();
	return Names;
}

void FBackchannelLiveLinkSource::ReceiveClient(ILiveLinkClient* InClient, FGuid InSourceGuid)
{
	LiveLink = InClient;
	SourceGuid = InSourceGuid;
	LastUpdate = FPlatformTime::Seconds();
}

void FBackchannelLiveLinkSource::Update()
{
	if (!LiveLink || !Core.IsValid())
	{
		return;
	}
	const double Now = FPlatformTime::Seconds();
	const double DeltaSeconds = Now - LastUpdate;
	LastUpdate = Now;
	const TArray<FName>& Names = PropertyNames();
	backchannel::MotionFrame Frame;
	Core->sessions(SessionNames);  // into the kept vector: no allocation per tick once it has held them all
	for (const std::string& Session : SessionNames)
	{
		if (!Core->play(Session, DeltaSeconds, Frame))
		{
			continue;  // no frame yet
		}
		const FName Subject(UTF8_TO_TCHAR(Session.c_str()));
		const FLiveLinkSubjectKey Key(SourceGuid, Subject);
		if (!Subjects.Contains(Subject))
		{
			FLiveLinkStaticDataStruct StaticData(FLiveLinkBaseStaticData::StaticStruct());
			StaticData.Cast<FLiveLinkBaseStaticData>()->PropertyNames = Names;
			LiveLink->PushSubjectStaticData_AnyThread(Key, ULiveLinkBasicRole::StaticClass(), MoveTemp(StaticData));
			Subjects.Add(Subject);
		}
		FLiveLinkFrameDataStruct FrameData(FLiveLinkBaseFrameData::StaticStruct());
		FLiveLinkBaseFrameData* Data = FrameData.Cast<FLiveLinkBaseFrameData>();
		Data->WorldTime = FLiveLinkWorldTime(Now);
		Data->PropertyValues.Reserve(Names.Num());
		for (float Value : Frame.live_link_values())
		{
			Data->PropertyValues.Add(Value);
		}
		Data->MetaData.StringMetaData.Add(FName(TEXT("State")), UTF8_TO_TCHAR(backchannel::state_name(Frame.state)));
		Data->MetaData.StringMetaData.Add(FName(TEXT("AudioTime")), FString::Printf(TEXT("%.4f"), Frame.t));
		LiveLink->PushSubjectFrameData_AnyThread(Key, MoveTemp(FrameData));
	}
}

bool FBackchannelLiveLinkSource::RequestSourceShutdown()
{
	LiveLink = nullptr;
	Core.Reset();  // the shared connection stays with the subsystem, for the voice components
	return true;
}

FText FBackchannelLiveLinkSource::GetSourceType() const
{
	return LOCTEXT("SourceType", "Backchannel");
}

FText FBackchannelLiveLinkSource::GetSourceMachineName() const
{
	return FText::FromString(Endpoint);
}

FText FBackchannelLiveLinkSource::GetSourceStatus() const
{
	if (!Core.IsValid())
	{
		return LOCTEXT("NoEngine", "no connection");
	}
	const backchannel::ClientCounters C = Core->counters();
	return FText::FromString(FString::Printf(TEXT("%s, %d sessions, %llu frames, %llu bad, %llu worker restarts"),
		C.worker_stats ? TEXT("worker seen") : TEXT("waiting for the worker"), int32(Core->sessions().size()),
		(unsigned long long)C.frames, (unsigned long long)C.bad_total(), (unsigned long long)C.worker_restarts));
}

#undef LOCTEXT_NAMESPACE
