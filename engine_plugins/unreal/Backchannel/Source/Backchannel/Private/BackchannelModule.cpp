#include "Modules/ModuleManager.h"

// Nothing to start: the Live Link source factory is found by reflection, the shared connection is made on first use.
IMPLEMENT_MODULE(FDefaultModuleImpl, Backchannel)
