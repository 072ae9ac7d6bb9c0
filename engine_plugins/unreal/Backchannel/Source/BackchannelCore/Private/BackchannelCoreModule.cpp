// The one engine-facing file of the core: it makes the folder an Unreal module. Not part of the CMake build.
#include "Modules/ModuleManager.h"

IMPLEMENT_MODULE(FDefaultModuleImpl, BackchannelCore)
