using UnrealBuildTool;

public class Backchannel : ModuleRules
{
	public Backchannel(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		PublicDependencyModuleNames.AddRange(new string[] {
			"Core", "CoreUObject", "Engine", "DeveloperSettings", "LiveLinkInterface", "BackchannelCore" });
		PrivateDependencyModuleNames.AddRange(new string[] {
			"AudioMixer",        // FAudioDevice's submix listeners
			"AudioMixerCore",    // ISubmixBufferListener
			"AudioCaptureCore",  // Audio::FAudioCapture: the player's microphone
		});
	}
}
