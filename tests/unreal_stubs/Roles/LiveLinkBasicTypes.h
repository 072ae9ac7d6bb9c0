#include "../UnrealStubs.h"  // stand-in: see UnrealStubs.h
