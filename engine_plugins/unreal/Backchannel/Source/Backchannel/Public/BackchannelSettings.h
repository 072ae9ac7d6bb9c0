// Project Settings > Plugins > Backchannel: where the worker is, and how the shared connection behaves.
#pragma once

#include "CoreMinimal.h"
#include "Engine/DeveloperSettings.h"
#include "BackchannelSettings.generated.h"

UCLASS(config = Game, defaultconfig, meta = (DisplayName = "Backchannel"))
class BACKCHANNEL_API UBackchannelSettings : public UDeveloperSettings
{
	GENERATED_BODY()

public:
	/** The worker's audio socket (`backchannel serve --audio-in`). */
	UPROPERTY(config, EditAnywhere, Category = "Worker")
	FString AudioEndpoint = TEXT("tcp://127.0.0.1:5555");

	/** The worker's motion socket (`--motion-out`). */
	UPROPERTY(config, EditAnywhere, Category = "Worker")
	FString MotionEndpoint = TEXT("tcp://127.0.0.1:5556");

	/** The worker's control socket (`--control`). */
	UPROPERTY(config, EditAnywhere, Category = "Worker")
	FString ControlEndpoint = TEXT("tcp://127.0.0.1:5557");

	/** CURVE, for a worker beyond this machine (`serve --curve DIR`): the `public-key` value in DIR/server.key
	 *  (40 characters of Z85). Empty: no encryption, for a worker on this machine. */
	UPROPERTY(config, EditAnywhere, Category = "Worker|Security")
	FString ServerPublicKey;

	/** This game's key pair: the `public-key` and `secret-key` values in DIR/NAME.key_secret. */
	UPROPERTY(config, EditAnywhere, Category = "Worker|Security")
	FString ClientPublicKey;

	UPROPERTY(config, EditAnywhere, Category = "Worker|Security")
	FString ClientSecretKey;

	/** Seconds a control request (open, set, close) waits for the worker before it is retried on a new socket. */
	UPROPERTY(config, EditAnywhere, Category = "Worker", meta = (ClampMin = "0.1"))
	float ControlTimeoutSeconds = 2.0f;

	/** Audio chunk length sent to the worker; 10-40 ms is typical for live audio. */
	UPROPERTY(config, EditAnywhere, Category = "Audio", meta = (ClampMin = "5", ClampMax = "100"))
	float ChunkMilliseconds = 20.0f;

	/** Add the Backchannel Live Link source when the first voice component starts, if none was added (in the Live
	 *  Link panel or by a preset): what a packaged game needs. */
	UPROPERTY(config, EditAnywhere, Category = "Live Link")
	bool bAddLiveLinkSourceAutomatically = true;

	/** Show every session the worker publishes in Live Link (also those fed by other clients), not only this game's. */
	UPROPERTY(config, EditAnywhere, Category = "Live Link")
	bool bShowAllSessions = true;

	/** How far each subject trails the newest frame, so the next frame has usually arrived to blend towards. */
	UPROPERTY(config, EditAnywhere, Category = "Live Link", meta = (ClampMin = "0", ClampMax = "0.5"))
	float PlaybackDelaySeconds = 0.05f;

	virtual FName GetCategoryName() const override { return TEXT("Plugins"); }
};
