#include "BackchannelVoiceComponent.h"

#include "Async/Async.h"
#include "AudioCaptureCore.h"
#include "AudioDevice.h"
#include "BackchannelSubsystem.h"
#include "BackchannelVoiceTap.h"
#include "Engine/World.h"
#include "GameFramework/Actor.h"
#include "Misc/EngineVersionComparison.h"
#include "Sound/SoundSubmix.h"

namespace
{
	// A partner's capture callback buffer: ~10 ms at 48 kHz, so the partner's audio reaches the worker in step
	constexpr uint32 MicrophoneFramesPerCallback = 480;

	backchannel::SessionSettings ToSettings(int32 Seed, const TMap<FString, float>& Style, const FString& Generator)
	{
		backchannel::SessionSettings Settings;
		Settings.seed = Seed;
		Settings.generator = TCHAR_TO_UTF8(*Generator);
		for (const TPair<FString, float>& Knob : Style)
		{
			Settings.style[TCHAR_TO_UTF8(*Knob.Key)] = Knob.Value;
		}
		return Settings;
	}
}

UBackchannelVoiceComponent::UBackchannelVoiceComponent()
{
	PrimaryComponentTick.bCanEverTick = false;
}

void UBackchannelVoiceComponent::BeginPlay()
{
	Super::BeginPlay();
	if (bStartOnBeginPlay)
	{
		StartSession();
	}
}

void UBackchannelVoiceComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	StopSession();
	Super::EndPlay(EndPlayReason);
}

void UBackchannelVoiceComponent::StartSession()
{
	UBackchannelSubsystem* Subsystem = UBackchannelSubsystem::Get();
	if (!Subsystem || !ActiveSession.IsEmpty())
	{
		return;
	}
	ActiveSession = UBackchannelSubsystem::SanitizeSessionName(SessionName.IsEmpty() ? GetOwner()->GetName() : SessionName);
	Subsystem->EnsureLiveLinkSource();
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Client = Subsystem->GetClient();
	const std::string Name = TCHAR_TO_UTF8(*ActiveSession);
	const backchannel::SessionSettings Settings = ToSettings(Seed, Style, Generator);
	TWeakObjectPtr<UBackchannelVoiceComponent> WeakThis(this);
	// `open` waits for the worker's reply (retried on a fresh socket if none comes): never on the game thread
	Async(EAsyncExecution::ThreadPool, [Client, Name, Settings, WeakThis]()
	{
		const backchannel::ControlReply Reply = Client->open(Name, Settings);
		AsyncTask(ENamedThreads::GameThread, [Reply, Name, WeakThis]()
		{
			if (!Reply.ok)
			{
				// the session stays in the client with its token: it opens itself on its first audio once a
				// worker answers, with the worker's default settings
				UE_LOG(LogBackchannel, Warning, TEXT("Backchannel: open %s: %s: %s"), UTF8_TO_TCHAR(Name.c_str()),
					UTF8_TO_TCHAR(Reply.error.c_str()), UTF8_TO_TCHAR(Reply.message.c_str()));
			}
			if (WeakThis.IsValid() && WeakThis->ActiveSession == UTF8_TO_TCHAR(Name.c_str()))
			{
				WeakThis->StartTaps();
			}
		});
	});
}

void UBackchannelVoiceComponent::StartTaps()
{
	UBackchannelSubsystem* Subsystem = UBackchannelSubsystem::Get();
	UWorld* World = GetWorld();
	if (!Subsystem || !World || VoiceTap.IsValid())
	{
		return;
	}
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Client = Subsystem->GetClient();
	const std::string Name = TCHAR_TO_UTF8(*ActiveSession);

	VoiceTap = MakeShared<FBackchannelVoiceTap, ESPMode::ThreadSafe>(Client, ActiveSession);
	FAudioDeviceHandle Device = World->GetAudioDevice();
	if (VoiceSubmix && Device.IsValid())
	{
#if UE_VERSION_OLDER_THAN(5, 4, 0)
		Device->RegisterSubmixBufferListener(VoiceTap.Get(), VoiceSubmix);
#else
		Device->RegisterSubmixBufferListener(VoiceTap.ToSharedRef(), *VoiceSubmix);
#endif
	}
	else
	{
		UE_LOG(LogBackchannel, Warning, TEXT("Backchannel: %s has no voice submix (or no audio device): its own voice is not sent"),
			*ActiveSession);
	}

	if (Partner == EBackchannelPartner::OtherVoice && PartnerVoice && PartnerVoice->VoiceTap.IsValid())
	{
		PartnerVoice->VoiceTap->AddListener(ActiveSession);
	}
	// speakers that started before this one and listen to it
	for (UBackchannelVoiceComponent* Other : TObjectRange<UBackchannelVoiceComponent>())
	{
		if (Other != this && Other->GetWorld() == World && Other->Partner == EBackchannelPartner::OtherVoice &&
			Other->PartnerVoice == this && !Other->ActiveSession.IsEmpty() && Other->VoiceTap.IsValid())
		{
			VoiceTap->AddListener(Other->ActiveSession);
		}
	}

	if (Partner == EBackchannelPartner::Microphone)
	{
		Microphone = MakeShared<Audio::FAudioCapture>();
		Audio::FAudioCaptureDeviceParams Params;
		Params.DeviceIndex = MicrophoneDevice;
		// the capture device's thread writes the session's partner ring: no lock, never behind socket work
		std::shared_ptr<backchannel::AudioRing> Ring = Client->audio_ring(Name, backchannel::Track::Other);
		const bool bOpened = Ring && Microphone->OpenAudioCaptureStream(Params,
			[Ring](const void* InAudio, int32 NumFrames, int32 NumChannels, int32 SampleRate, double StreamTime, bool bOverflow)
			{
				// float32 samples (the capture's default encoding)
				Ring->write(static_cast<const float*>(InAudio), size_t(NumFrames), NumChannels, SampleRate);
			},
			MicrophoneFramesPerCallback);
		if (!bOpened || !Microphone->StartStream())
		{
			UE_LOG(LogBackchannel, Warning, TEXT("Backchannel: no microphone for %s: the face will not listen"), *ActiveSession);
			Microphone.Reset();
		}
	}
}

void UBackchannelVoiceComponent::StopTaps()
{
	if (Microphone.IsValid())
	{
		Microphone->StopStream();
		Microphone->CloseStream();
		Microphone.Reset();
	}
	if (VoiceTap.IsValid())
	{
		UWorld* World = GetWorld();
		FAudioDeviceHandle Device = World ? World->GetAudioDevice() : FAudioDeviceHandle();
		if (VoiceSubmix && Device.IsValid())
		{
#if UE_VERSION_OLDER_THAN(5, 4, 0)
			Device->UnregisterSubmixBufferListener(VoiceTap.Get(), VoiceSubmix);
#else
			Device->UnregisterSubmixBufferListener(VoiceTap.ToSharedRef(), *VoiceSubmix);
#endif
		}
		VoiceTap.Reset();
	}
	if (Partner == EBackchannelPartner::OtherVoice && PartnerVoice && PartnerVoice->VoiceTap.IsValid())
	{
		PartnerVoice->VoiceTap->RemoveListener(ActiveSession);
	}
}

void UBackchannelVoiceComponent::SetStyle(int32 NewSeed, const TMap<FString, float>& NewStyle)
{
	Seed = NewSeed;
	Style = NewStyle;
	UBackchannelSubsystem* Subsystem = UBackchannelSubsystem::Get();
	if (!Subsystem || ActiveSession.IsEmpty())
	{
		return;
	}
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Client = Subsystem->GetClient();
	const std::string Name = TCHAR_TO_UTF8(*ActiveSession);
	const backchannel::SessionSettings Settings = ToSettings(Seed, Style, Generator);
	Async(EAsyncExecution::ThreadPool, [Client, Name, Settings]()
	{
		const backchannel::ControlReply Reply = Client->set(Name, Settings);
		if (!Reply.ok)
		{
			UE_LOG(LogBackchannel, Warning, TEXT("Backchannel: set %s: %s: %s"), UTF8_TO_TCHAR(Name.c_str()),
				UTF8_TO_TCHAR(Reply.error.c_str()), UTF8_TO_TCHAR(Reply.message.c_str()));
		}
	});
}

void UBackchannelVoiceComponent::StopSession()
{
	if (ActiveSession.IsEmpty())
	{
		return;
	}
	StopTaps();
	if (UBackchannelSubsystem* Subsystem = UBackchannelSubsystem::Get())
	{
		// the rest of the audio, then `end` on the same socket: the worker publishes the last frames
		Subsystem->GetClient()->end(TCHAR_TO_UTF8(*ActiveSession));
	}
	ActiveSession.Reset();
}
