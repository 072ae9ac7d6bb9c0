// The engine-independent core (plain C++17, no engine headers but in BackchannelCoreModule.cpp): the same files
// engine_plugins/unreal/core/CMakeLists.txt builds and tests outside the engine.
using System.IO;
using UnrealBuildTool;

public class BackchannelCore : ModuleRules
{
	public BackchannelCore(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.NoPCHs;  // its files include no engine header, so none is forced on them
		bUseUnity = false;
		bEnableExceptions = true;  // cppzmq and msgpack-cxx report by exception; the core catches every one
		PublicIncludePaths.Add(Path.Combine(ModuleDirectory, "Public"));
		PublicDependencyModuleNames.Add("Core");
		PrivateDependencyModuleNames.AddRange(new string[] { "ZeroMQ", "MsgpackCxx" });
	}
}
