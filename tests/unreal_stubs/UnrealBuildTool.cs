// Stand-ins for the UnrealBuildTool types our *.Build.cs files use (as of UE 5.3-5.6), so `mcs` checks their C#:
// names, members and types. Not UnrealBuildTool: passing here is not a build in Unreal.
using System.Collections.Generic;

namespace UnrealBuildTool
{
	public enum ModuleType { CPlusPlus, External }

	public sealed class UnrealTargetPlatform
	{
		public static readonly UnrealTargetPlatform Win64 = new UnrealTargetPlatform();
		public static readonly UnrealTargetPlatform Linux = new UnrealTargetPlatform();
		public static readonly UnrealTargetPlatform Mac = new UnrealTargetPlatform();
	}

	public class ReadOnlyTargetRules
	{
		public UnrealTargetPlatform Platform = UnrealTargetPlatform.Linux;
	}

	public class ModuleRules
	{
		public enum PCHUsageMode { Default, NoPCHs, NoSharedPCHs, UseSharedPCHs, UseExplicitOrSharedPCHs }

		public ModuleRules(ReadOnlyTargetRules Target) { }

		public ModuleType Type = ModuleType.CPlusPlus;
		public PCHUsageMode PCHUsage = PCHUsageMode.Default;
		public bool bUseUnity = true;
		public bool bEnableExceptions = false;
		public string ModuleDirectory = "";
		public List<string> PublicIncludePaths = new List<string>();
		public List<string> PublicSystemIncludePaths = new List<string>();
		public List<string> PublicDefinitions = new List<string>();
		public List<string> PrivateDefinitions = new List<string>();
		public List<string> PublicAdditionalLibraries = new List<string>();
		public List<string> PublicSystemLibraries = new List<string>();
		public List<string> PublicDependencyModuleNames = new List<string>();
		public List<string> PrivateDependencyModuleNames = new List<string>();
	}
}
