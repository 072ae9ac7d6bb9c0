using UnrealBuildTool;

public class BackchannelEditor : ModuleRules
{
	public BackchannelEditor(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		PrivateDependencyModuleNames.AddRange(new string[] {
			"Core", "CoreUObject", "Engine", "Slate", "SlateCore", "LiveLinkInterface", "Backchannel", "BackchannelCore" });
	}
}
