// The audio render thread's side of a voice component: the submix listener that hands the voice to the client, as
// its session's own track and as the partner track of every session that listens to this voice (NPC-to-NPC). It
// writes into the client's lock-free rings (Backchannel/AudioRing.h): the render thread never waits on socket work.
#pragma once

#include "CoreMinimal.h"
#include "ISubmixBufferListener.h"
#include "Backchannel/Client.h"

#include <memory>
#include <string>
#include <vector>

class FBackchannelVoiceTap : public ISubmixBufferListener
{
public:
	FBackchannelVoiceTap(TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> InClient, const FString& InSession)
		: Client(InClient), Session(TCHAR_TO_UTF8(*InSession)), Name(TEXT("Backchannel:") + InSession),
		  SelfRing(InClient->audio_ring(Session, backchannel::Track::Self))
	{
	}

	/** Another session takes this voice as its partner ("other") track. */
	void AddListener(const FString& ListeningSession)
	{
		const std::string Listener = TCHAR_TO_UTF8(*ListeningSession);
		std::shared_ptr<backchannel::AudioRing> Ring = Client->audio_ring(Listener, backchannel::Track::Other);
		FScopeLock Guard(&Lock);  // held by the game thread only to change the list, never during I/O
		Listeners.push_back(Listener);
		ListenerRings.push_back(std::move(Ring));
	}

	void RemoveListener(const FString& ListeningSession)
	{
		FScopeLock Guard(&Lock);
		const std::string Gone = TCHAR_TO_UTF8(*ListeningSession);
		for (size_t i = 0; i < Listeners.size(); ++i)
		{
			if (Listeners[i] == Gone)
			{
				Listeners.erase(Listeners.begin() + i);
				ListenerRings.erase(ListenerRings.begin() + i);
				break;
			}
		}
	}

	//~ ISubmixBufferListener: on the audio render thread, every buffer, silence included
	virtual void OnNewSubmixBuffer(const USoundSubmix* OwningSubmix, float* AudioData, int32 NumSamples, int32 NumChannels,
		const int32 SampleRate, double AudioClock) override
	{
		if (NumChannels <= 0 || NumSamples <= 0)
		{
			return;
		}
		const size_t Frames = size_t(NumSamples / NumChannels);
		if (SelfRing)
		{
			SelfRing->write(AudioData, Frames, NumChannels, SampleRate);
		}
		FScopeLock Guard(&Lock);
		for (const std::shared_ptr<backchannel::AudioRing>& Ring : ListenerRings)
		{
			if (Ring)
			{
				Ring->write(AudioData, Frames, NumChannels, SampleRate);
			}
		}
	}

	/** Keeps the submix rendering while nobody speaks: its silence is what keeps the session's frames flowing. */
	virtual bool IsRenderingAudio() const override { return true; }

	virtual const FString& GetListenerName() const override { return Name; }

private:
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Client;
	std::string Session;
	FString Name;
	FCriticalSection Lock;
	std::shared_ptr<backchannel::AudioRing> SelfRing;  // this voice as its session's own track
	std::vector<std::string> Listeners;
	std::vector<std::shared_ptr<backchannel::AudioRing>> ListenerRings;  // this voice as each listener's partner
};
