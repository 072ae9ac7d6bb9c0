// Streams a WAV file through the core to a worker as one or many sessions on one connection, as the Unreal plugin
// does from a game, and prints the motion that comes back: the core's integration program.
//
//   backchannel-stream --wav me.wav [--other you.wav] [--sessions 16] [--name npc] [--open] [--seed 3]
//                      [--style smile=0.2,expressiveness=1.2] [--speed 1] [--block-ms 10] [--print-frames]
//                      [--audio-in EP] [--motion-out EP] [--control EP] [--settle-s 10]
//                      [--server-key DIR/server.key --client-key DIR/NAME.key_secret]   (a worker with --curve)
//                      [--ready-s 20] [--control-timeout-s 2]   (waits for the worker's stats; per control try)
//   backchannel-stream --watch-s 5 [--motion-out EP]     (no audio: count what arrives from every session)
//
// Sessions are NAME (one) or NAME-0 ... NAME-(N-1); with --open each is opened with seed SEED + k. --speed 1 hands
// the audio over in real time, in blocks of --block-ms as an engine's audio callback does (0: as fast as it goes).
// Output lines: "ready"; with --print-frames one "frame session=.. seq=.. t=.. state=.. head=[..] gaze=[..]
// weights=[..]" per frame (9 significant digits); one "session name=.. frames=.. first=.. last=.. gaps=.." each;
// "counters ..." (ClientCounters). Exit 0 when every session's last frame (the audio's end) came, 3 if not.
#include "Backchannel/Client.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace backchannel;

namespace {

struct Wav {
    int rate = 0, channels = 0;
    std::vector<float> samples;  // interleaved
    size_t frames() const { return channels ? samples.size() / size_t(channels) : 0; }
};

uint32_t le32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t le16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }

// 16-bit PCM or 32-bit float WAV, any rate and channel count.
bool read_wav(const std::string& path, Wav& wav, std::string& why) {
    std::ifstream in(path, std::ios::binary);
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.size() < 12 || std::memcmp(bytes.data(), "RIFF", 4) || std::memcmp(bytes.data() + 8, "WAVE", 4)) {
        why = "not a RIFF/WAVE file";
        return false;
    }
    int format = 0, bits = 0;
    for (size_t pos = 12; pos + 8 <= bytes.size();) {
        const uint32_t size = le32(&bytes[pos + 4]);
        const unsigned char* body = &bytes[pos + 8];
        if (pos + 8 + size > bytes.size()) break;
        if (!std::memcmp(&bytes[pos], "fmt ", 4) && size >= 16) {
            format = le16(body);
            wav.channels = le16(body + 2);
            wav.rate = int(le32(body + 4));
            bits = le16(body + 14);
            if (format == 0xfffe && size >= 26) format = le16(body + 24);  // WAVE_FORMAT_EXTENSIBLE's subformat
        } else if (!std::memcmp(&bytes[pos], "data", 4)) {
            if (format == 1 && bits == 16) {
                for (uint32_t i = 0; i + 1 < size; i += 2) wav.samples.push_back(int16_t(le16(body + i)) / 32768.0f);
            } else if (format == 3 && bits == 32) {
                for (uint32_t i = 0; i + 3 < size; i += 4) {
                    uint32_t u = le32(body + i);
                    float x;
                    std::memcpy(&x, &u, 4);
                    wav.samples.push_back(x);
                }
            } else {
                why = "only 16-bit PCM and 32-bit float WAV files";
                return false;
            }
            return wav.channels > 0 && wav.rate > 0;
        }
        pos += 8 + size + (size & 1);
    }
    why = "no fmt/data chunk";
    return false;
}

const char* arg(int& i, int argc, char** argv) {
    if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
    }
    return argv[++i];
}

struct Seen {
    size_t frames = 0;
    int64_t first = -1, last = -1;
    size_t gaps = 0;
};

}  // namespace

int main(int argc, char** argv) {
    ClientOptions opt;
    std::string wav_path, other_path, name = "npc", style_text, server_key, client_key;
    int sessions = 1;
    bool open = false, print_frames = false;
    int64_t seed = -1;
    double speed = 0, block_ms = 10, settle_s = 10, watch_s = 0, ready_s = 20;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--wav") wav_path = arg(i, argc, argv);
        else if (a == "--other") other_path = arg(i, argc, argv);
        else if (a == "--sessions") sessions = std::atoi(arg(i, argc, argv));
        else if (a == "--name") name = arg(i, argc, argv);
        else if (a == "--open") open = true;
        else if (a == "--seed") seed = std::atoll(arg(i, argc, argv));
        else if (a == "--style") style_text = arg(i, argc, argv);
        else if (a == "--speed") speed = std::atof(arg(i, argc, argv));
        else if (a == "--block-ms") block_ms = std::atof(arg(i, argc, argv));
        else if (a == "--settle-s") settle_s = std::atof(arg(i, argc, argv));
        else if (a == "--watch-s") watch_s = std::atof(arg(i, argc, argv));
        else if (a == "--ready-s") ready_s = std::atof(arg(i, argc, argv));
        else if (a == "--control-timeout-s") opt.control_timeout_s = std::atof(arg(i, argc, argv));
        else if (a == "--print-frames") print_frames = true;
        else if (a == "--audio-in") opt.endpoints.audio_in = arg(i, argc, argv);
        else if (a == "--motion-out") opt.endpoints.motion_out = arg(i, argc, argv);
        else if (a == "--control") opt.endpoints.control = arg(i, argc, argv);
        else if (a == "--server-key") server_key = arg(i, argc, argv);
        else if (a == "--client-key") client_key = arg(i, argc, argv);
        else {
            std::fprintf(stderr, "unknown argument %s (see the comment at the top of stream.cpp)\n", a.c_str());
            return 2;
        }
    }
    Wav self, other;
    std::string why;
    if ((!server_key.empty() || !client_key.empty()) && !CurveKeys::from_files(server_key, client_key, opt.keys, why)) {
        std::fprintf(stderr, "%s\n", why.c_str());
        return 2;
    }
    if (!wav_path.empty() && !read_wav(wav_path, self, why)) {
        std::fprintf(stderr, "%s: %s\n", wav_path.c_str(), why.c_str());
        return 2;
    }
    if (!other_path.empty() && !read_wav(other_path, other, why)) {
        std::fprintf(stderr, "%s: %s\n", other_path.c_str(), why.c_str());
        return 2;
    }
    SessionSettings settings;
    for (size_t pos = 0; pos < style_text.size();) {  // name=value,name=value
        size_t comma = style_text.find(',', pos), eq = style_text.find('=', pos);
        if (comma == std::string::npos) comma = style_text.size();
        if (eq != std::string::npos && eq < comma)
            settings.style[style_text.substr(pos, eq - pos)] = std::atof(style_text.substr(eq + 1, comma - eq - 1).c_str());
        pos = comma + 1;
    }
    opt.all_sessions = wav_path.empty();

    Client client(opt);
    std::mutex seen_mutex;
    std::map<std::string, Seen> seen;
    client.on_frame([&](const std::string& session, const MotionFrame& f) {
        std::lock_guard<std::mutex> lock(seen_mutex);
        Seen& s = seen[session];
        if (s.frames && f.seq != s.last + 1) ++s.gaps;
        if (!s.frames) s.first = f.seq;
        s.last = f.seq;
        ++s.frames;
        if (!print_frames) return;
        std::string weights, head, gaze;
        char number[32];
        for (float w : f.blendshapes) {
            std::snprintf(number, sizeof number, weights.empty() ? "%.9g" : " %.9g", double(w));
            weights += number;
        }
        for (float x : f.head_rotation) {
            std::snprintf(number, sizeof number, head.empty() ? "%.9g" : " %.9g", double(x));
            head += number;
        }
        for (float x : f.gaze) {
            std::snprintf(number, sizeof number, gaze.empty() ? "%.9g" : " %.9g", double(x));
            gaze += number;
        }
        std::printf("frame session=%s seq=%lld t=%.9f state=%s head=[%s] gaze=[%s] weights=[%s]\n", session.c_str(),
                    (long long)f.seq, f.t, state_name(f.state), head.c_str(), gaze.c_str(), weights.c_str());
    });

    std::vector<std::string> names;
    for (int k = 0; k < (wav_path.empty() ? 0 : sessions); ++k) names.push_back(sessions == 1 ? name : name + "-" + std::to_string(k));
    for (size_t k = 0; k < names.size(); ++k) {
        if (open) {
            SessionSettings s = settings;
            if (seed >= 0) s.seed = seed + int64_t(k);
            ControlReply reply = client.open(names[k], s);
            if (!reply.ok) {
                std::fprintf(stderr, "open %s: %s: %s\n", names[k].c_str(), reply.error.c_str(), reply.message.c_str());
                return 1;
            }
        } else {
            client.add(names[k]);
        }
    }
    if (!client.wait_ready(ready_s)) {
        std::fprintf(stderr, "no worker stats within %g s at %s\n", ready_s, opt.endpoints.motion_out.c_str());
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);

    int exit_code = 0;
    if (!wav_path.empty()) {
        const size_t block = std::max<size_t>(1, size_t(std::lround(self.rate * block_ms / 1000.0)));
        const auto start = std::chrono::steady_clock::now();
        for (size_t at = 0, k = 0; at < self.frames(); at += block, ++k) {
            if (speed > 0)
                std::this_thread::sleep_until(start + std::chrono::duration<double>(at / double(self.rate) / speed));
            const size_t n = std::min(block, self.frames() - at);
            for (const std::string& s : names) {
                client.send_audio(s, Track::Self, &self.samples[at * size_t(self.channels)], n, self.channels, self.rate);
                if (other.frames()) {  // the partner's blocks at its own rate, over the same stretch of time
                    size_t lo = size_t(double(at) * other.rate / self.rate), hi = size_t(double(at + n) * other.rate / self.rate);
                    hi = std::min(hi, other.frames());
                    if (hi > lo)
                        client.send_audio(s, Track::Other, &other.samples[lo * size_t(other.channels)], hi - lo,
                                          other.channels, other.rate);
                }
            }
        }
        for (const std::string& s : names) client.end(s);
        // the last frame answers the audio's end: seq ceil(duration * 30) - 1
        const int64_t last = int64_t(std::ceil(double(self.frames()) / self.rate * kFrameRate - 1e-9)) - 1;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(settle_s);
        bool complete = false;
        while (!complete && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            std::lock_guard<std::mutex> lock(seen_mutex);
            complete = true;
            for (const std::string& s : names) complete = complete && seen.count(s) && seen[s].last >= last;
        }
        exit_code = complete ? 0 : 3;
    } else {
        std::this_thread::sleep_for(std::chrono::duration<double>(watch_s));
    }

    ClientCounters c = client.counters();
    {
        std::lock_guard<std::mutex> lock(seen_mutex);
        for (auto& entry : seen)
            std::printf("session name=%s frames=%zu first=%lld last=%lld gaps=%zu\n", entry.first.c_str(),
                        entry.second.frames, (long long)entry.second.first, (long long)entry.second.last,
                        entry.second.gaps);
    }
    std::printf("counters frames=%llu", (unsigned long long)c.frames);
    for (size_t k = 1; k < c.bad_bodies.size(); ++k)
        std::printf(" %s=%llu", body_error_name(BodyError(k)), (unsigned long long)c.bad_bodies[k]);
    std::printf(" bad_multipart=%llu duplicates=%llu restarted_streams=%llu seq_gaps=%llu sent=%llu dropped=%llu "
                "silence=%llu worker_stats=%llu restarts=%llu reopened=%llu control_timeouts=%llu\n",
                (unsigned long long)c.bad_multipart, (unsigned long long)c.duplicate_frames,
                (unsigned long long)c.restarted_streams, (unsigned long long)c.seq_gaps,
                (unsigned long long)c.messages_sent, (unsigned long long)c.messages_dropped,
                (unsigned long long)c.silence_samples, (unsigned long long)c.worker_stats,
                (unsigned long long)c.worker_restarts, (unsigned long long)c.reopened,
                (unsigned long long)c.control_timeouts);
    std::fflush(stdout);
    return exit_code;
}
