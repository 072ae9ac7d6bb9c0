// Put on an actor that speaks (an NPC): its voice, and its conversation partner's, go to the worker as one session,
// whose face comes back through the Backchannel Live Link source under the same name.
#pragma once

#include "CoreMinimal.h"
#include "Components/ActorComponent.h"
#include "BackchannelVoiceComponent.generated.h"

class USoundSubmix;
class FBackchannelVoiceTap;
namespace Audio { class FAudioCapture; }

UENUM(BlueprintType)
enum class EBackchannelPartner : uint8
{
	/** Only the actor's own voice: the face speaks, and idles while it is silent. */
	None,
	/** The player's microphone (AudioCapture): the face listens to the player. */
	Microphone,
	/** Another actor's voice component: NPC-to-NPC conversations. */
	OtherVoice,
};

UCLASS(ClassGroup = (Audio), meta = (BlueprintSpawnableComponent))
class BACKCHANNEL_API UBackchannelVoiceComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UBackchannelVoiceComponent();

	/** The session (and Live Link subject) name; empty: the owning actor's name. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	FString SessionName;

	/** The submix this actor's dialogue plays through: its own voice is tapped there (give each speaker its own). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	TObjectPtr<USoundSubmix> VoiceSubmix;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	EBackchannelPartner Partner = EBackchannelPartner::Microphone;

	/** With Partner = OtherVoice: the voice component of the actor this one talks with. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel", meta = (EditCondition = "Partner == EBackchannelPartner::OtherVoice"))
	TObjectPtr<UBackchannelVoiceComponent> PartnerVoice;

	/** With Partner = Microphone: the capture device (-1: the system's default). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel", meta = (EditCondition = "Partner == EBackchannelPartner::Microphone"))
	int32 MicrophoneDevice = -1;

	/** Generator seed (a different face per NPC); -1: the worker's default. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	int32 Seed = -1;

	/** Style knobs: expressiveness (0..3), smile (-1..1), blink_rate (0..5); unknown names are ignored. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	TMap<FString, float> Style;

	/** A generator the worker offers (its `describe`); empty: the worker's default. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	FString Generator;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Backchannel")
	bool bStartOnBeginPlay = true;

	/** Opens the session (off the game thread) and starts streaming both voices. */
	UFUNCTION(BlueprintCallable, Category = "Backchannel")
	void StartSession();

	/** Changes seed and style from the next frame on. */
	UFUNCTION(BlueprintCallable, Category = "Backchannel")
	void SetStyle(int32 NewSeed, const TMap<FString, float>& NewStyle);

	/** Stops streaming and ends the session: the worker sends its last frames. */
	UFUNCTION(BlueprintCallable, Category = "Backchannel")
	void StopSession();

	UFUNCTION(BlueprintPure, Category = "Backchannel")
	FString GetSessionName() const { return ActiveSession; }

protected:
	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
	void StartTaps();
	void StopTaps();

	FString ActiveSession;
	TSharedPtr<FBackchannelVoiceTap, ESPMode::ThreadSafe> VoiceTap;
	TSharedPtr<Audio::FAudioCapture> Microphone;  // shared: destroyed where its type is complete
};
