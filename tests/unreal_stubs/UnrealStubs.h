// Minimal stand-ins for the Unreal Engine types the Backchannel plugin uses, so `g++ -fsyntax-only` checks our own
// Unreal-facing code (names, signatures of the overrides as of UE 5.3-5.6, types passed around) without an engine.
// Every engine header the plugin includes is a one-line file here that includes this one. They are declarations
// shaped like the engine's, not the engine: passing here is not building in Unreal.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

using int32 = int32_t;
using uint32 = uint32_t;
using uint8 = uint8_t;
using int64 = int64_t;
using TCHAR = char16_t;  // as on Linux and Mac
#define TEXT(x) u##x
#define INDEX_NONE (-1)

template <typename T> using TFunction = std::function<T>;
template <typename T> T&& MoveTemp(T& x) { return static_cast<T&&>(x); }

// ---- strings
class FString {
  public:
    FString() = default;
    FString(const TCHAR* s) : s_(s ? s : u"") {}
    FString(std::u16string s) : s_(std::move(s)) {}
    const TCHAR* operator*() const { return s_.c_str(); }
    bool IsEmpty() const { return s_.empty(); }
    int32 Len() const { return int32(s_.size()); }
    void Reset() { s_.clear(); }
    void AppendChar(TCHAR c) { s_.push_back(c); }
    auto begin() const { return s_.begin(); }
    auto end() const { return s_.end(); }
    bool operator==(const FString& o) const { return s_ == o.s_; }
    bool operator==(const TCHAR* o) const { return s_ == o; }
    bool operator<(const FString& o) const { return s_ < o.s_; }
    friend FString operator+(const TCHAR* a, const FString& b) { return FString(std::u16string(a) + b.s_); }
    template <typename... Args> static FString Printf(const TCHAR*, Args&&...) { return FString(); }
  private:
    std::u16string s_;
};
struct StubUtf8 { std::string s; explicit StubUtf8(const TCHAR* t) { for (; t && *t; ++t) s.push_back(char(*t)); } };
struct StubWide { std::u16string s; explicit StubWide(const char* t) { for (; t && *t; ++t) s.push_back(TCHAR(*t)); } };
#define TCHAR_TO_UTF8(x) (StubUtf8(x).s.c_str())
#define UTF8_TO_TCHAR(x) (StubWide(x).s.c_str())

class FName {
  public:
    FName() = default;
    FName(const char* s) : s_(s) {}
    FName(const TCHAR* s) : s_(StubUtf8(s).s) {}
    bool operator<(const FName& o) const { return s_ < o.s_; }
    bool operator==(const FName& o) const { return s_ == o.s_; }
  private:
    std::string s_;
};

class FText {
  public:
    static FText FromString(const FString&) { return FText(); }
};
#define LOCTEXT(Key, Text) FText::FromString(TEXT(Text))  // under a #define LOCTEXT_NAMESPACE

// ---- containers
template <typename T> class TArray {
  public:
    void Add(const T& x) { v_.push_back(x); }
    int32 Num() const { return int32(v_.size()); }
    void Reserve(int32 n) { v_.reserve(size_t(n)); }
    T& operator[](int32 i) { return v_[size_t(i)]; }
    auto begin() const { return v_.begin(); }
    auto end() const { return v_.end(); }
  private:
    std::vector<T> v_;
};
template <typename T> class TSet {
  public:
    void Add(const T& x) { s_.insert(x); }
    bool Contains(const T& x) const { return s_.count(x) > 0; }
  private:
    std::set<T> s_;
};
template <typename K, typename V> struct TPair { K Key; V Value; };
template <typename K, typename V> class TMap {
  public:
    void Add(const K& k, const V& v) { p_.push_back({k, v}); }
    auto begin() const { return p_.begin(); }
    auto end() const { return p_.end(); }
  private:
    std::vector<TPair<K, V>> p_;
};

// ---- smart pointers
enum class ESPMode { NotThreadSafe, ThreadSafe };
template <typename T, ESPMode M = ESPMode::ThreadSafe> class TSharedRef;
template <typename T, ESPMode M = ESPMode::ThreadSafe> class TSharedPtr {
  public:
    TSharedPtr() = default;
    TSharedPtr(std::nullptr_t) {}
    template <typename U> TSharedPtr(const TSharedPtr<U, M>& o) : p_(o.Std()) {}
    template <typename U> TSharedPtr(const TSharedRef<U, M>& o) : p_(o.Std()) {}
    explicit TSharedPtr(std::shared_ptr<T> p) : p_(std::move(p)) {}
    bool IsValid() const { return bool(p_); }
    void Reset() { p_.reset(); }
    T* Get() const { return p_.get(); }
    T* operator->() const { return p_.get(); }
    TSharedRef<T, M> ToSharedRef() const { return TSharedRef<T, M>(p_); }
    const std::shared_ptr<T>& Std() const { return p_; }
  private:
    std::shared_ptr<T> p_;
};
template <typename T, ESPMode M> class TSharedRef {
  public:
    explicit TSharedRef(std::shared_ptr<T> p) : p_(std::move(p)) {}
    template <typename U> TSharedRef(const TSharedRef<U, M>& o) : p_(o.Std()) {}
    T* operator->() const { return p_.get(); }
    const std::shared_ptr<T>& Std() const { return p_; }
  private:
    std::shared_ptr<T> p_;
};
template <typename T, ESPMode M = ESPMode::ThreadSafe, typename... A> TSharedRef<T, M> MakeShared(A&&... a) {
    return TSharedRef<T, M>(std::make_shared<T>(std::forward<A>(a)...));
}
template <typename T> class TUniquePtr {
  public:
    TUniquePtr() = default;
    TUniquePtr(std::unique_ptr<T> p) : p_(std::move(p)) {}
    bool IsValid() const { return bool(p_); }
    void Reset() { p_.reset(); }
    T* operator->() const { return p_.get(); }
  private:
    std::unique_ptr<T> p_;
};
template <typename T, typename... A> TUniquePtr<T> MakeUnique(A&&... a) { return TUniquePtr<T>(std::make_unique<T>(std::forward<A>(a)...)); }

// ---- threads, time, logging
struct FCriticalSection {};
struct FScopeLock { explicit FScopeLock(FCriticalSection*) {} };
struct FPlatformTime { static double Seconds() { return 0.0; } };
struct FGuid { uint32 A = 0, B = 0, C = 0, D = 0; };
enum class EAsyncExecution { TaskGraph, Thread, ThreadPool };
namespace ENamedThreads { enum Type { GameThread, AnyThread }; }
template <typename F> void Async(EAsyncExecution, F&& f) { f(); }
template <typename F> void AsyncTask(ENamedThreads::Type, F&& f) { f(); }
struct StubLogCategory {};
#define DECLARE_LOG_CATEGORY_EXTERN(Name, Verbosity, Compiled) extern StubLogCategory Name;
#define DEFINE_LOG_CATEGORY(Name) StubLogCategory Name;
template <typename... A> void StubLog(const StubLogCategory&, const TCHAR*, A&&...) {}
#define UE_LOG(Category, Verbosity, Format, ...) StubLog(Category, Format, ##__VA_ARGS__)

// ---- UObject
#define UCLASS(...)
#define USTRUCT(...)
#define UENUM(...)
#define UPROPERTY(...)
#define UFUNCTION(...)
#define GENERATED_BODY()  // each X.generated.h (written by the test) redefines it with the class's Super
#define BACKCHANNEL_API
class UClass {};
class UScriptStruct {};
class UWorld;
class UObject {
  public:
    virtual ~UObject() = default;
    UWorld* GetWorld() const { return nullptr; }
    FString GetName() const { return FString(); }
};
template <typename T> class TObjectPtr {
  public:
    TObjectPtr() = default;
    TObjectPtr(T* p) : p_(p) {}
    operator T*() const { return p_; }
    T* operator->() const { return p_; }
  private:
    T* p_ = nullptr;
};
template <typename T> class TWeakObjectPtr {
  public:
    TWeakObjectPtr(T* p = nullptr) : p_(p) {}
    bool IsValid() const { return p_ != nullptr; }
    T* operator->() const { return p_; }
  private:
    T* p_;
};
template <typename T> class TObjectRange {
  public:
    T** begin() const { return nullptr; }
    T** end() const { return nullptr; }
};
template <typename T> class TSubclassOf {
  public:
    TSubclassOf(UClass*) {}
};
template <typename T> const T* GetDefault() { static T instance; return &instance; }

namespace EEndPlayReason { enum Type { Destroyed, LevelTransition, EndPlayInEditor, RemovedFromWorld, Quit }; }
struct FActorComponentTickFunction { bool bCanEverTick = true; };
class AActor : public UObject {};
class UActorComponent : public UObject {
  public:
    AActor* GetOwner() const { return nullptr; }
  protected:
    virtual void BeginPlay() {}
    virtual void EndPlay(const EEndPlayReason::Type) {}
    FActorComponentTickFunction PrimaryComponentTick;
};
class UDeveloperSettings : public UObject {
  public:
    virtual FName GetCategoryName() const { return FName(); }
};
class UEngineSubsystem : public UObject {
  public:
    virtual void Deinitialize() {}
};
class UEngine : public UObject {
  public:
    template <typename T> T* GetEngineSubsystem() const { return nullptr; }
};
extern UEngine* GEngine;

// ---- audio
class USoundSubmix : public UObject {};
class ISubmixBufferListener {
  public:
    virtual ~ISubmixBufferListener() = default;
    virtual void OnNewSubmixBuffer(const USoundSubmix* OwningSubmix, float* AudioData, int32 NumSamples, int32 NumChannels,
                                   const int32 SampleRate, double AudioClock) = 0;
    virtual bool IsRenderingAudio() const { return false; }
    virtual const FString& GetListenerName() const { static FString Unset; return Unset; }
};
class FAudioDevice {
  public:
    // 5.4 and later
    void RegisterSubmixBufferListener(TSharedRef<ISubmixBufferListener, ESPMode::ThreadSafe>, USoundSubmix&) {}
    void UnregisterSubmixBufferListener(TSharedRef<ISubmixBufferListener, ESPMode::ThreadSafe>, USoundSubmix&) {}
    // 5.3 (deprecated in 5.4)
    void RegisterSubmixBufferListener(ISubmixBufferListener*, USoundSubmix*) {}
    void UnregisterSubmixBufferListener(ISubmixBufferListener*, USoundSubmix*) {}
};
class FAudioDeviceHandle {
  public:
    bool IsValid() const { return false; }
    FAudioDevice* operator->() const { return nullptr; }
};
class UWorld : public UObject {
  public:
    FAudioDeviceHandle GetAudioDevice() const { return FAudioDeviceHandle(); }
};
namespace Audio {
using FOnAudioCaptureFunction = TFunction<void(const void* InAudio, int32 NumFrames, int32 NumChannels, int32 SampleRate,
                                               double StreamTime, bool bOverFlow)>;
struct FAudioCaptureDeviceParams { int32 DeviceIndex = INDEX_NONE; };
class FAudioCapture {
  public:
    bool OpenAudioCaptureStream(const FAudioCaptureDeviceParams&, FOnAudioCaptureFunction, uint32) { return false; }
    bool StartStream() { return false; }
    bool StopStream() { return false; }
    bool CloseStream() { return false; }
};
}  // namespace Audio

// ---- Live Link
struct FLiveLinkSubjectKey { FLiveLinkSubjectKey(FGuid, FName) {} };
struct FLiveLinkWorldTime { explicit FLiveLinkWorldTime(double) {} FLiveLinkWorldTime() = default; };
struct FLiveLinkMetaData { TMap<FName, FString> StringMetaData; };
struct FLiveLinkBaseStaticData { static UScriptStruct* StaticStruct() { return nullptr; } TArray<FName> PropertyNames; };
struct FLiveLinkBaseFrameData {
    static UScriptStruct* StaticStruct() { return nullptr; }
    FLiveLinkWorldTime WorldTime;
    FLiveLinkMetaData MetaData;
    TArray<float> PropertyValues;
};
struct FLiveLinkStaticDataStruct {
    explicit FLiveLinkStaticDataStruct(UScriptStruct*) {}
    template <typename T> T* Cast() { return nullptr; }
};
struct FLiveLinkFrameDataStruct {
    explicit FLiveLinkFrameDataStruct(UScriptStruct*) {}
    template <typename T> T* Cast() { return nullptr; }
};
class ULiveLinkRole : public UObject {};
class ULiveLinkBasicRole : public ULiveLinkRole { public: static UClass* StaticClass() { return nullptr; } };
class ILiveLinkSource;
class ILiveLinkClient {
  public:
    static FName ModularFeatureName;
    virtual ~ILiveLinkClient() = default;
    virtual FGuid AddSource(TSharedPtr<ILiveLinkSource> Source) = 0;
    virtual void PushSubjectStaticData_AnyThread(const FLiveLinkSubjectKey& SubjectKey, TSubclassOf<ULiveLinkRole> Role,
                                                 FLiveLinkStaticDataStruct&& StaticData) = 0;
    virtual void PushSubjectFrameData_AnyThread(const FLiveLinkSubjectKey& SubjectKey, FLiveLinkFrameDataStruct&& FrameData) = 0;
};
class ILiveLinkSource {
  public:
    virtual ~ILiveLinkSource() = default;
    virtual void ReceiveClient(ILiveLinkClient* InClient, FGuid InSourceGuid) = 0;
    virtual void Update() {}
    virtual bool CanBeDisplayedInUI() const { return true; }
    virtual bool IsSourceStillValid() const = 0;
    virtual bool RequestSourceShutdown() = 0;
    virtual FText GetSourceType() const = 0;
    virtual FText GetSourceMachineName() const = 0;
    virtual FText GetSourceStatus() const = 0;
};
class ULiveLinkSourceFactory : public UObject {
  public:
    enum class EMenuType { SubPanel, MenuEntry, Disabled };
    virtual FText GetSourceDisplayName() const = 0;
    virtual FText GetSourceTooltip() const = 0;
    virtual EMenuType GetMenuType() const { return EMenuType::Disabled; }
    virtual TSharedPtr<ILiveLinkSource> CreateSource(const FString& ConnectionString) const = 0;
};

class IModularFeatures {
  public:
    static IModularFeatures& Get() { static IModularFeatures m; return m; }
    bool IsModularFeatureAvailable(const FName&) const { return false; }
    template <typename T> T& GetModularFeature(const FName&) { return *static_cast<T*>(nullptr); }
};

// ---- modules, console, notifications
class IModuleInterface {
  public:
    virtual ~IModuleInterface() = default;
    virtual void StartupModule() {}
    virtual void ShutdownModule() {}
};
class FDefaultModuleImpl : public IModuleInterface {};
#define IMPLEMENT_MODULE(ModuleClass, ModuleName) \
    IModuleInterface* StubInitialize##ModuleName() { return new ModuleClass(); }
class IConsoleObject {};
enum EConsoleVariableFlags { ECVF_Default = 0 };
struct FConsoleCommandDelegate {
    static FConsoleCommandDelegate CreateStatic(void (*)()) { return FConsoleCommandDelegate(); }
};
class IConsoleManager {
  public:
    static IConsoleManager& Get() { static IConsoleManager m; return m; }
    IConsoleObject* RegisterConsoleCommand(const TCHAR*, const TCHAR*, const FConsoleCommandDelegate&, uint32) { return nullptr; }
    void UnregisterConsoleObject(IConsoleObject*) {}
};
struct FNotificationInfo { explicit FNotificationInfo(const FText&) {} float ExpireDuration = 1.0f; };
class SNotificationItem {
  public:
    enum ECompletionState { CS_None, CS_Pending, CS_Success, CS_Fail };
    void SetCompletionState(ECompletionState) {}
};
class FSlateNotificationManager {
  public:
    static FSlateNotificationManager& Get() { static FSlateNotificationManager m; return m; }
    TSharedPtr<SNotificationItem> AddNotification(const FNotificationInfo&) { return TSharedPtr<SNotificationItem>(); }
};

// ---- engine version (the test compiles once as 5.3 and once as 5.6)
#ifndef STUB_ENGINE_MINOR
#define STUB_ENGINE_MINOR 6
#endif
#define UE_VERSION_OLDER_THAN(Major, Minor, Patch) ((Major) > 5 || ((Major) == 5 && STUB_ENGINE_MINOR < (Minor)))
