// Backchannel protocol v1 (engine_plugins/PROTOCOL.md) as plain C++17: the messages a game sends and the motion
// bodies it receives. No engine headers and no library headers here, so Unreal (or any engine) can include it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace backchannel {

constexpr int kProtocolVersion = 1;
constexpr int kFrameRate = 30;  // motion frames per second of audio
constexpr int kBlendshapeCount = 52;

// The 52 ARKit weights in the order the worker sends them, named as Unreal's ARKit / Live Link Face curves are
// (PascalCase: the names MetaHuman's mh_arkit_mapping_pose reads; Apple's own docs spell them eyeBlinkLeft, ...).
extern const char* const kArkitCurveNames[kBlendshapeCount];
// Head and eye curves in the Live Link Face convention (rotator degrees / 180, i.e. radians / pi): what MetaHuman's
// face Animation Blueprint reads from an iPhone, and what the worker's own --livelink output sends.
constexpr int kPoseCurveCount = 9;
extern const char* const kPoseCurveNames[kPoseCurveCount];

// A Live Link subject's properties, in order: the 52 ARKit curves, the 9 pose curves, then Speaking and Listening
// (1 or 0: the generator's state).
constexpr int kLiveLinkValueCount = kBlendshapeCount + kPoseCurveCount + 2;
const char* live_link_property_name(int index);  // nullptr outside 0..kLiveLinkValueCount-1

enum class Track : uint8_t { Self, Other };
enum class SampleFormat : uint8_t { S16LE, F32LE };
enum class FaceState : uint8_t { Idle, Speaking, Listening, Other };  // Other: a state a newer worker added

const char* track_name(Track track);
const char* state_name(FaceState state);

struct MotionFrame {
    int64_t seq = 0;
    double t = 0;  // audio time the frame answers (seq / 30, or the sender's clock after a resume)
    FaceState state = FaceState::Idle;
    std::array<float, kBlendshapeCount> blendshapes{};
    std::array<float, 3> head_rotation{};  // pitch, yaw, roll, radians
    std::array<float, 3> head_translation{};  // metres
    std::array<float, 4> gaze{};  // left yaw, left pitch, right yaw, right pitch, radians
    double published = 0;  // worker wall clock (Unix seconds)

    // The 9 pose curves (kPoseCurveNames order) as the Live Link Face packet carries them.
    std::array<float, kPoseCurveCount> pose_curves() const;
    // Every Live Link property value (live_link_property_name's order).
    std::array<float, kLiveLinkValueCount> live_link_values() const;
};

// What decoding a body can find wrong; every kind is counted by the client, none is fatal.
enum class BodyError : uint8_t { None, NotMsgpack, NotAMap, MissingField, WrongType, UnsupportedVersion, Count };
const char* body_error_name(BodyError error);

// Decodes msgpack with the worker's own limits (arrays <= 256 items, maps <= 64 entries, strings <= 4096 bytes,
// nesting <= 8), refused at the header before anything is built. It keeps its memory between calls, so decoding
// frame after frame allocates nothing once warm. Not thread-safe: one per thread.
class BodyDecoder {
  public:
    BodyDecoder();
    ~BodyDecoder();
    BodyDecoder(const BodyDecoder&) = delete;
    BodyDecoder& operator=(const BodyDecoder&) = delete;

    BodyError motion(const void* data, size_t size, MotionFrame& out);
    // `_worker/stats`: the worker's uptime (a restart shows as uptime going back)
    BodyError worker_stats(const void* data, size_t size, double& uptime_s);
    // The first error's text of the last failed call ("array size overflow", "missing field blendshapes", ...).
    const std::string& last_error() const { return last_error_; }

  private:
    struct Impl;
    Impl* impl_;
    std::string last_error_;
};

// A control reply: `ok`, and the fields a client acts on; every reply field as text in `fields` for logs and tools.
struct ControlReply {
    bool ok = false;
    std::string error;  // the worker's error kind, or "timeout" / "not_msgpack" from this side
    std::string message;
    std::string token;  // `open`: the session's owner token
    std::map<std::string, std::string> fields;  // top-level scalars as text (lists and maps summarised)
};
ControlReply decode_reply(const void* data, size_t size);

// Settings a session is opened (and re-opened after a worker restart) with.
struct SessionSettings {
    std::string generator;  // empty: the worker's default
    int64_t seed = -1;  // < 0: the worker's default
    std::map<std::string, double> style;  // expressiveness, smile, blink_rate, ...
};

// --- encoders: each appends one complete message to `out` (cleared first) ---
void encode_audio(std::vector<uint8_t>& out, const std::string& session, const std::string& token, Track track,
                  int64_t seq, double t, int sample_rate, SampleFormat format, const void* pcm, size_t pcm_bytes);
void encode_end(std::vector<uint8_t>& out, const std::string& session, const std::string& token);
// `describe`, `stats` (session may be empty), `open`, `set`, `close`.
void encode_request(std::vector<uint8_t>& out, const std::string& type, const std::string& session = "",
                    const std::string& token = "", const SessionSettings* settings = nullptr);

bool valid_session_name(const std::string& name);
bool valid_token(const std::string& token);
std::string random_token();  // 32 characters of A-Z a-z 0-9 from the OS's random source

}  // namespace backchannel
