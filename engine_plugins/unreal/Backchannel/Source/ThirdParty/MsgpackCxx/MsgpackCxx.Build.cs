// msgpack-cxx (msgpack-c's C++ side, header-only), used without Boost: see ../ZeroMQ/README.md.
using System.IO;
using UnrealBuildTool;

public class MsgpackCxx : ModuleRules
{
	public MsgpackCxx(ReadOnlyTargetRules Target) : base(Target)
	{
		Type = ModuleType.External;
		PublicSystemIncludePaths.Add(Path.Combine(ModuleDirectory, "include"));  // msgpack.hpp, msgpack/...
		PublicDefinitions.Add("MSGPACK_NO_BOOST=1");
	}
}
