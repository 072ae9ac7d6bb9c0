// The one connection to the worker that every voice component and the Live Link source share.
#pragma once

#include "CoreMinimal.h"
#include "Subsystems/EngineSubsystem.h"
#include "Backchannel/Client.h"
#include "BackchannelSubsystem.generated.h"

DECLARE_LOG_CATEGORY_EXTERN(LogBackchannel, Log, All);

UCLASS()
class BACKCHANNEL_API UBackchannelSubsystem : public UEngineSubsystem
{
	GENERATED_BODY()

public:
	/** The engine's instance (null before the engine is up). */
	static UBackchannelSubsystem* Get();

	/** The shared client, made from the project settings on first use. Thread-safe, as the client is. */
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> GetClient();

	/** Adds the Backchannel Live Link source unless one exists (or the settings say not to). Game thread. */
	void EnsureLiveLinkSource();

	/** Session names are 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit: anything else becomes '-'. */
	static FString SanitizeSessionName(const FString& Name);

	virtual void Deinitialize() override;

private:
	FCriticalSection Lock;
	TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Client;
};
