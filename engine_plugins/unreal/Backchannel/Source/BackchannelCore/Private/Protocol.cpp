// Protocol v1 messages through msgpack-cxx (header-only, built without Boost). The only file of the core that
// includes msgpack, so its templates are compiled once.
#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include "Backchannel/Protocol.h"

#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace backchannel {

const char* const kArkitCurveNames[kBlendshapeCount] = {
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut"};

const char* const kPoseCurveNames[kPoseCurveCount] = {"HeadYaw",     "HeadPitch",    "HeadRoll",
                                                      "LeftEyeYaw",  "LeftEyePitch", "LeftEyeRoll",
                                                      "RightEyeYaw", "RightEyePitch", "RightEyeRoll"};

const char* track_name(Track track) { return track == Track::Self ? "self" : "other"; }

const char* state_name(FaceState state) {
    switch (state) {
        case FaceState::Idle: return "idle";
        case FaceState::Speaking: return "speaking";
        case FaceState::Listening: return "listening";
        default: return "other";
    }
}

const char* body_error_name(BodyError error) {
    static const char* const names[] = {"none", "not_msgpack", "not_a_map", "missing_field", "wrong_type",
                                        "unsupported_version"};
    return error < BodyError::Count ? names[size_t(error)] : "?";
}

std::array<float, kPoseCurveCount> MotionFrame::pose_curves() const {
    // Live Link Face units and signs (PROTOCOL.md, bridge/outputs/livelink.py): radians / pi; roll is negated
    // because the app's HeadRoll tilts to the subject's right and ours to the avatar's left; eyes have no roll.
    const float k = float(1.0 / 3.14159265358979323846);
    return {head_rotation[1] * k, head_rotation[0] * k, -head_rotation[2] * k, gaze[0] * k, gaze[1] * k, 0.f,
            gaze[2] * k,          gaze[3] * k,          0.f};
}

const char* live_link_property_name(int index) {
    if (index < 0 || index >= kLiveLinkValueCount) return nullptr;
    if (index < kBlendshapeCount) return kArkitCurveNames[index];
    if (index < kBlendshapeCount + kPoseCurveCount) return kPoseCurveNames[index - kBlendshapeCount];
    return index == kLiveLinkValueCount - 2 ? "Speaking" : "Listening";
}

std::array<float, kLiveLinkValueCount> MotionFrame::live_link_values() const {
    std::array<float, kLiveLinkValueCount> out{};
    std::copy(blendshapes.begin(), blendshapes.end(), out.begin());
    const auto pose = pose_curves();
    std::copy(pose.begin(), pose.end(), out.begin() + kBlendshapeCount);
    out[kLiveLinkValueCount - 2] = state == FaceState::Speaking ? 1.0f : 0.0f;
    out[kLiveLinkValueCount - 1] = state == FaceState::Listening ? 1.0f : 0.0f;
    return out;
}

// ------------------------------------------------------------------------------------------------ decoding

namespace {

const msgpack::unpack_limit kLimits(/*array=*/256, /*map=*/64, /*str=*/4096, /*bin=*/4 << 20, /*ext=*/0,
                                    /*depth=*/8);

// Strings and byte strings are read where they lie in the message rather than copied into the zone.
bool reference_in_place(msgpack::type::object_type, std::size_t, void*) { return true; }

bool is_number(const msgpack::object& o) {
    return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER ||
           o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64;
}

double number(const msgpack::object& o) {
    switch (o.type) {
        case msgpack::type::POSITIVE_INTEGER: return double(o.via.u64);
        case msgpack::type::NEGATIVE_INTEGER: return double(o.via.i64);
        default: return o.via.f64;  // FLOAT32 is widened to f64 by the unpacker
    }
}

bool key_is(const msgpack::object& key, const char* name) {
    const size_t n = std::strlen(name);
    return key.type == msgpack::type::STR && key.via.str.size == n && std::memcmp(key.via.str.ptr, name, n) == 0;
}

template <size_t N>
bool floats(const msgpack::object& o, std::array<float, N>& out) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != N) return false;
    for (size_t i = 0; i < N; ++i) {
        if (!is_number(o.via.array.ptr[i])) return false;
        out[i] = float(number(o.via.array.ptr[i]));
    }
    return true;
}

}  // namespace

// The message as one map, or an error (with its text in `why`).
static BodyError parse_map(msgpack::zone& zone, const void* data, size_t size, msgpack::object& out,
                           std::string& why) {
    zone.clear();
    std::size_t off = 0;
    try {
        out = msgpack::unpack(zone, static_cast<const char*>(data), size, off, reference_in_place, nullptr, kLimits);
    } catch (const std::exception& e) {
        why = e.what();
        return BodyError::NotMsgpack;
    }
    if (off != size) {
        why = "bytes after the msgpack object";
        return BodyError::NotMsgpack;
    }
    if (out.type != msgpack::type::MAP) {
        why = "not a map";
        return BodyError::NotAMap;
    }
    return BodyError::None;
}

struct BodyDecoder::Impl {
    msgpack::zone zone{16 * 1024};  // one chunk holds a motion body's objects: cleared, never freed, between calls
};

BodyDecoder::BodyDecoder() : impl_(new Impl) {}
BodyDecoder::~BodyDecoder() { delete impl_; }

BodyError BodyDecoder::motion(const void* data, size_t size, MotionFrame& out) {
    msgpack::object body;
    BodyError error = parse_map(impl_->zone, data, size, body, last_error_);
    if (error != BodyError::None) return error;
    enum { V = 1, Seq = 2, T = 4, State = 8, Shapes = 16, Head = 32, Move = 64, Gaze = 128, All = 255 };
    unsigned seen = 0;
    const char* bad = nullptr;
    MotionFrame frame;
    for (uint32_t i = 0; i < body.via.map.size && !bad; ++i) {
        const msgpack::object& key = body.via.map.ptr[i].key;
        const msgpack::object& val = body.via.map.ptr[i].val;
        if (key_is(key, "v")) {
            if (val.type != msgpack::type::POSITIVE_INTEGER) bad = "v";
            else if (val.via.u64 != kProtocolVersion) {
                last_error_ = "v is " + std::to_string(val.via.u64);
                return BodyError::UnsupportedVersion;
            }
            seen |= V;
        } else if (key_is(key, "seq")) {
            if (val.type != msgpack::type::POSITIVE_INTEGER || val.via.u64 > uint64_t(INT64_MAX)) bad = "seq";
            frame.seq = int64_t(val.via.u64);
            seen |= Seq;
        } else if (key_is(key, "t")) {
            if (!is_number(val) || !std::isfinite(number(val))) bad = "t";
            else frame.t = number(val);
            seen |= T;
        } else if (key_is(key, "state")) {
            if (val.type != msgpack::type::STR) bad = "state";
            else if (key_is(val, "speaking")) frame.state = FaceState::Speaking;
            else if (key_is(val, "listening")) frame.state = FaceState::Listening;
            else if (key_is(val, "idle")) frame.state = FaceState::Idle;
            else frame.state = FaceState::Other;
            seen |= State;
        } else if (key_is(key, "blendshapes")) {
            if (!floats(val, frame.blendshapes)) bad = "blendshapes";
            seen |= Shapes;
        } else if (key_is(key, "head_rotation")) {
            if (!floats(val, frame.head_rotation)) bad = "head_rotation";
            seen |= Head;
        } else if (key_is(key, "head_translation")) {
            if (!floats(val, frame.head_translation)) bad = "head_translation";
            seen |= Move;
        } else if (key_is(key, "gaze")) {
            if (!floats(val, frame.gaze)) bad = "gaze";
            seen |= Gaze;
        } else if (key_is(key, "published")) {
            if (!is_number(val)) bad = "published";
            else frame.published = number(val);
        }  // any other field: a later minor version's, ignored as PROTOCOL.md asks
    }
    if (bad) {
        last_error_ = std::string("wrong type: ") + bad;
        return BodyError::WrongType;
    }
    if (seen != All) {
        static const char* const names[] = {"v", "seq", "t", "state", "blendshapes", "head_rotation",
                                            "head_translation", "gaze"};
        for (int k = 0; k < 8; ++k)
            if (!(seen & (1u << k))) {
                last_error_ = std::string("missing field ") + names[k];
                break;
            }
        return BodyError::MissingField;
    }
    out = frame;
    return BodyError::None;
}

BodyError BodyDecoder::worker_stats(const void* data, size_t size, double& uptime_s) {
    msgpack::object body;
    BodyError error = parse_map(impl_->zone, data, size, body, last_error_);
    if (error != BodyError::None) return error;
    for (uint32_t i = 0; i < body.via.map.size; ++i)
        if (key_is(body.via.map.ptr[i].key, "uptime_s")) {
            if (!is_number(body.via.map.ptr[i].val)) {
                last_error_ = "wrong type: uptime_s";
                return BodyError::WrongType;
            }
            uptime_s = number(body.via.map.ptr[i].val);
            return BodyError::None;
        }
    last_error_ = "missing field uptime_s";
    return BodyError::MissingField;
}

ControlReply decode_reply(const void* data, size_t size) {
    ControlReply reply;
    msgpack::zone zone;
    msgpack::object body;
    std::string why;
    if (parse_map(zone, data, size, body, why) != BodyError::None) {
        reply.error = "not_msgpack";
        reply.message = why;
        return reply;
    }
    for (uint32_t i = 0; i < body.via.map.size; ++i) {
        const msgpack::object& key = body.via.map.ptr[i].key;
        const msgpack::object& val = body.via.map.ptr[i].val;
        if (key.type != msgpack::type::STR) continue;
        std::string name(key.via.str.ptr, key.via.str.size), text;
        switch (val.type) {
            case msgpack::type::STR: text.assign(val.via.str.ptr, val.via.str.size); break;
            case msgpack::type::BOOLEAN: text = val.via.boolean ? "true" : "false"; break;
            case msgpack::type::POSITIVE_INTEGER:
            case msgpack::type::NEGATIVE_INTEGER:
            case msgpack::type::FLOAT32:
            case msgpack::type::FLOAT64: {
                char buf[32];  // the shortest text that reads back as the same double
                for (int digits = 15; digits <= 17; ++digits) {
                    std::snprintf(buf, sizeof buf, "%.*g", digits, number(val));
                    if (std::strtod(buf, nullptr) == number(val)) break;
                }
                text = buf;
                break;
            }
            case msgpack::type::ARRAY: text = "[" + std::to_string(val.via.array.size) + " items]"; break;
            case msgpack::type::MAP: text = "{" + std::to_string(val.via.map.size) + " entries}"; break;
            default: text = "nil";
        }
        if (name == "ok") reply.ok = val.type == msgpack::type::BOOLEAN && val.via.boolean;
        else if (name == "error") reply.error = text;
        else if (name == "message") reply.message = text;
        else if (name == "token") reply.token = text;
        reply.fields[name] = text;
    }
    return reply;
}

// ------------------------------------------------------------------------------------------------ encoding

namespace {

// msgpack-cxx's packer writes to any type with write(const char*, size_t); this one appends to a reused vector.
struct VectorWriter {
    std::vector<uint8_t>& out;
    void write(const char* data, size_t size) { out.insert(out.end(), data, data + size); }
};
using Packer = msgpack::packer<VectorWriter>;

void pack_str(Packer& p, const char* s) { p.pack_str(uint32_t(std::strlen(s))).pack_str_body(s, uint32_t(std::strlen(s))); }
void pack_str(Packer& p, const std::string& s) { p.pack_str(uint32_t(s.size())).pack_str_body(s.data(), uint32_t(s.size())); }

}  // namespace

void encode_audio(std::vector<uint8_t>& out, const std::string& session, const std::string& token, Track track,
                  int64_t seq, double t, int sample_rate, SampleFormat format, const void* pcm, size_t pcm_bytes) {
    out.clear();
    VectorWriter writer{out};
    Packer p(writer);
    p.pack_map(token.empty() ? 9 : 10);
    pack_str(p, "v"), p.pack_int(kProtocolVersion);
    pack_str(p, "type"), pack_str(p, "audio");
    pack_str(p, "session"), pack_str(p, session);
    pack_str(p, "track"), pack_str(p, track_name(track));
    pack_str(p, "seq"), p.pack_int64(seq);
    pack_str(p, "t"), p.pack_double(t);
    pack_str(p, "sr"), p.pack_int(sample_rate);
    pack_str(p, "format"), pack_str(p, format == SampleFormat::S16LE ? "s16le" : "f32le");
    pack_str(p, "pcm"), p.pack_bin(uint32_t(pcm_bytes)).pack_bin_body(static_cast<const char*>(pcm), uint32_t(pcm_bytes));
    if (!token.empty()) pack_str(p, "token"), pack_str(p, token);
}

void encode_end(std::vector<uint8_t>& out, const std::string& session, const std::string& token) {
    out.clear();
    VectorWriter writer{out};
    Packer p(writer);
    p.pack_map(token.empty() ? 3 : 4);
    pack_str(p, "v"), p.pack_int(kProtocolVersion);
    pack_str(p, "type"), pack_str(p, "end");
    pack_str(p, "session"), pack_str(p, session);
    if (!token.empty()) pack_str(p, "token"), pack_str(p, token);
}

void encode_request(std::vector<uint8_t>& out, const std::string& type, const std::string& session,
                    const std::string& token, const SessionSettings* settings) {
    out.clear();
    VectorWriter writer{out};
    Packer p(writer);
    const bool with_settings = settings && (type == "open" || type == "set");
    uint32_t n = 2 + !session.empty() + !token.empty();
    if (with_settings) n += !settings->generator.empty() + (settings->seed >= 0) + !settings->style.empty();
    p.pack_map(n);
    pack_str(p, "v"), p.pack_int(kProtocolVersion);
    pack_str(p, "type"), pack_str(p, type);
    if (!session.empty()) pack_str(p, "session"), pack_str(p, session);
    if (!token.empty()) pack_str(p, "token"), pack_str(p, token);
    if (!with_settings) return;
    if (!settings->generator.empty()) pack_str(p, "generator"), pack_str(p, settings->generator);
    if (settings->seed >= 0) pack_str(p, "seed"), p.pack_int64(settings->seed);
    if (!settings->style.empty()) {
        pack_str(p, "style"), p.pack_map(uint32_t(settings->style.size()));
        for (const auto& knob : settings->style) pack_str(p, knob.first), p.pack_double(knob.second);
    }
}

// ------------------------------------------------------------------------------------------------ names

static bool name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool valid_session_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || !name_char(name[0])) return false;
    for (char c : name)
        if (!name_char(c) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

bool valid_token(const std::string& token) {
    if (token.size() < 16 || token.size() > 128) return false;
    for (char c : token)
        if (!name_char(c) && c != '_' && c != '-') return false;
    return true;
}

std::string random_token() {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device source;  // the OS's entropy: a token is a bearer secret
    std::uniform_int_distribution<int> pick(0, 61);
    std::string token(32, 'x');
    for (char& c : token) c = alphabet[pick(source)];
    return token;
}

}  // namespace backchannel
