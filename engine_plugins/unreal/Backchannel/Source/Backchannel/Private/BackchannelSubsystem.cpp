#include "BackchannelSubsystem.h"

#include "BackchannelLiveLinkSource.h"
#include "BackchannelSettings.h"
#include "Engine/Engine.h"
#include "Features/IModularFeatures.h"
#include "ILiveLinkClient.h"

DEFINE_LOG_CATEGORY(LogBackchannel);

UBackchannelSubsystem* UBackchannelSubsystem::Get()
{
	return GEngine ? GEngine->GetEngineSubsystem<UBackchannelSubsystem>() : nullptr;
}

TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> UBackchannelSubsystem::GetClient()
{
	FScopeLock Guard(&Lock);
	if (!Client.IsValid())
	{
		const UBackchannelSettings* Settings = GetDefault<UBackchannelSettings>();
		backchannel::ClientOptions Options;
		Options.endpoints.audio_in = TCHAR_TO_UTF8(*Settings->AudioEndpoint);
		Options.endpoints.motion_out = TCHAR_TO_UTF8(*Settings->MotionEndpoint);
		Options.endpoints.control = TCHAR_TO_UTF8(*Settings->ControlEndpoint);
		Options.keys.server_public = TCHAR_TO_UTF8(*Settings->ServerPublicKey);
		Options.keys.client_public = TCHAR_TO_UTF8(*Settings->ClientPublicKey);
		Options.keys.client_secret = TCHAR_TO_UTF8(*Settings->ClientSecretKey);
		Options.control_timeout_s = Settings->ControlTimeoutSeconds;
		Options.chunk_ms = Settings->ChunkMilliseconds;
		Options.all_sessions = Settings->bShowAllSessions;
		Options.playhead_delay_s = Settings->PlaybackDelaySeconds;
		Client = MakeShared<backchannel::Client, ESPMode::ThreadSafe>(Options);
		UE_LOG(LogBackchannel, Log, TEXT("Backchannel: audio to %s, motion from %s, control at %s"),
			*Settings->AudioEndpoint, *Settings->MotionEndpoint, *Settings->ControlEndpoint);
	}
	return Client;
}

void UBackchannelSubsystem::EnsureLiveLinkSource()
{
	if (!GetDefault<UBackchannelSettings>()->bAddLiveLinkSourceAutomatically || FBackchannelLiveLinkSource::Instances() > 0)
	{
		return;
	}
	IModularFeatures& Features = IModularFeatures::Get();
	if (Features.IsModularFeatureAvailable(ILiveLinkClient::ModularFeatureName))
	{
		ILiveLinkClient& LiveLink = Features.GetModularFeature<ILiveLinkClient>(ILiveLinkClient::ModularFeatureName);
		LiveLink.AddSource(MakeShared<FBackchannelLiveLinkSource>());
	}
}

FString UBackchannelSubsystem::SanitizeSessionName(const FString& Name)
{
	FString Out;
	for (const TCHAR C : Name)
	{
		const bool bAlnum = (C >= 'A' && C <= 'Z') || (C >= 'a' && C <= 'z') || (C >= '0' && C <= '9');
		const bool bAllowed = bAlnum || ((C == '_' || C == '.' || C == '-') && !Out.IsEmpty());
		Out.AppendChar(bAllowed ? C : (Out.IsEmpty() ? TCHAR('s') : TCHAR('-')));
		if (Out.Len() == 64)
		{
			break;
		}
	}
	return Out.IsEmpty() ? FString(TEXT("session")) : Out;
}

void UBackchannelSubsystem::Deinitialize()
{
	FScopeLock Guard(&Lock);
	Client.Reset();  // the client's thread stops; queued audio gets half a second to leave
	Super::Deinitialize();
}
