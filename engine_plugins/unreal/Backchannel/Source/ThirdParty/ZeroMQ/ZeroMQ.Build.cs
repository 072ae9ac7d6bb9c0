// libzmq (the C library) and cppzmq (its header-only C++ binding), prebuilt per platform: see README.md here.
using System.IO;
using UnrealBuildTool;

public class ZeroMQ : ModuleRules
{
	public ZeroMQ(ReadOnlyTargetRules Target) : base(Target)
	{
		Type = ModuleType.External;
		PublicSystemIncludePaths.Add(Path.Combine(ModuleDirectory, "include"));  // zmq.h, zmq.hpp, zmq_addon.hpp
		PublicDefinitions.Add("ZMQ_STATIC");  // linked into the module, no libzmq DLL to ship

		string Lib = Path.Combine(ModuleDirectory, "lib");
		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			PublicAdditionalLibraries.Add(Path.Combine(Lib, "Win64", "libzmq.lib"));
			PublicSystemLibraries.AddRange(new string[] { "ws2_32.lib", "iphlpapi.lib", "advapi32.lib" });
		}
		else if (Target.Platform == UnrealTargetPlatform.Linux)
		{
			PublicAdditionalLibraries.Add(Path.Combine(Lib, "Linux", "x86_64-unknown-linux-gnu", "libzmq.a"));
		}
		else if (Target.Platform == UnrealTargetPlatform.Mac)
		{
			PublicAdditionalLibraries.Add(Path.Combine(Lib, "Mac", "libzmq.a"));
		}
	}
}
