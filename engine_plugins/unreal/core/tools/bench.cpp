// What the core costs an engine (a benchmark, not a test; docs/benchmarks.md):
//   1. per engine tick at 60 Hz with N sessions (default 16): the frames that arrive in a tick decoded and buffered
//      (N x 30 / 60), then every session's playhead advanced and its face blended, on the calling thread;
//   2. through a real socket: a PUB in this process sends N sessions' frames over loopback TCP to a Client; the
//      whole process's CPU time per frame (the publisher's share included, so an upper bound for the client);
//   3. audio out, paced in real time: per 60 Hz tick, 1/60 s of 48 kHz stereo for both tracks of N sessions handed to a Client (mono
//      mix, chunking, encoding, queueing) on the calling thread, a PULL in this process taking it over loopback.
//
//   backchannel-core-bench [SESSIONS] [SECONDS_OF_FRAMES]
#include "Backchannel/Client.h"
#include "Backchannel/FrameBuffer.h"
#include "Backchannel/Protocol.h"

#include <msgpack.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

using namespace backchannel;
using Clock = std::chrono::steady_clock;

// A motion body as bridge/protocol.py packs it (float64 values, the same fields).
static std::string motion_body(int64_t seq) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> p(buf);
    std::vector<double> shapes(52);
    for (size_t i = 0; i < shapes.size(); ++i) shapes[i] = 0.5 + 0.4 * std::sin(0.1 * double(seq) + double(i));
    p.pack_map(13);
    p.pack(std::string("v")), p.pack(1);
    p.pack(std::string("seq")), p.pack(seq);
    p.pack(std::string("t")), p.pack(double(seq) / 30);
    p.pack(std::string("state")), p.pack(std::string(seq % 60 < 30 ? "speaking" : "listening"));
    p.pack(std::string("blendshapes")), p.pack(shapes);
    p.pack(std::string("head_rotation")), p.pack(std::vector<double>{0.01 * double(seq % 7), -0.02, 0.03});
    p.pack(std::string("head_translation")), p.pack(std::vector<double>{0.0, 0.001, 0.0});
    p.pack(std::string("gaze")), p.pack(std::vector<double>{0.1, 0.0, 0.1, 0.0});
    p.pack(std::string("published")), p.pack(1.7e9);
    p.pack(std::string("audio_arrived")), p.pack(1.7e9);
    p.pack(std::string("audio_ready")), p.pack(1.7e9);
    p.pack(std::string("audio_upto")), p.pack(double(seq) / 30);
    p.pack(std::string("latency_hint")), p.pack(0);
    return std::string(buf.data(), buf.size());
}

static double percentile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

int main(int argc, char** argv) {
    const int sessions = argc > 1 ? std::atoi(argv[1]) : 16;
    const double seconds = argc > 2 ? std::atof(argv[2]) : 20.0;
    const int frames = int(seconds * kFrameRate);
    std::vector<std::string> bodies;
    for (int k = 0; k < frames; ++k) bodies.push_back(motion_body(k));

    // 1. the engine's side, per 60 Hz tick
    BodyDecoder decoder;
    std::vector<FrameBuffer> buffers(size_t(sessions), FrameBuffer(64));
    std::vector<Playhead> heads{size_t(sessions), Playhead()};
    MotionFrame frame, out;
    std::vector<double> tick_us;
    float sink = 0;
    for (int tick = 0; tick < frames * 2; ++tick) {
        const auto t0 = Clock::now();
        if (tick % 2 == 0)
            for (int s = 0; s < sessions; ++s) {
                const std::string& body = bodies[size_t(tick / 2)];
                if (decoder.motion(body.data(), body.size(), frame) == BodyError::None) buffers[size_t(s)].push(frame);
            }
        for (int s = 0; s < sessions; ++s) {
            FrameBuffer& b = buffers[size_t(s)];
            b.sample(heads[size_t(s)].advance(1 / 60.0, b.newest().t), out);
            sink += out.blendshapes[17];
        }
        tick_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    double decode_us = 0;
    {
        const auto t0 = Clock::now();
        for (const std::string& body : bodies) decoder.motion(body.data(), body.size(), frame);
        decode_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / double(bodies.size());
    }
    std::printf("engine side, %d sessions, 60 Hz ticks (%d): per tick p50 %.1f us, p99 %.1f us, max %.1f us; "
                "one body decoded %.2f us (%zu bytes)\n",
                sessions, frames * 2, percentile(tick_us, 0.5), percentile(tick_us, 0.99),
                *std::max_element(tick_us.begin(), tick_us.end()), decode_us, bodies[0].size());

    // 2. through loopback TCP into a Client
    zmq::context_t ctx;
    zmq::socket_t pub(ctx, zmq::socket_type::pub);
    pub.set(zmq::sockopt::sndhwm, 0);
    pub.bind("tcp://127.0.0.1:*");
    ClientOptions opt;
    opt.endpoints.motion_out = pub.get(zmq::sockopt::last_endpoint);
    opt.all_sessions = true;
    Client client(opt);
    const std::string stats = [] {
        msgpack::sbuffer buf;
        msgpack::packer<msgpack::sbuffer> p(buf);
        p.pack_map(2), p.pack(std::string("v")), p.pack(1), p.pack(std::string("uptime_s")), p.pack(1.0);
        return std::string(buf.data(), buf.size());
    }();
    while (!client.wait_ready(0.05)) {
        pub.send(zmq::buffer(std::string("_worker/stats")), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(stats));
    }
    std::vector<std::string> topics;
    for (int s = 0; s < sessions; ++s) topics.push_back("npc-" + std::to_string(s) + "/motion");
    const std::clock_t cpu0 = std::clock();
    const auto wall0 = Clock::now();
    for (int k = 0; k < frames; ++k)
        for (int s = 0; s < sessions; ++s) {
            pub.send(zmq::buffer(topics[size_t(s)]), zmq::send_flags::sndmore);
            pub.send(zmq::buffer(bodies[size_t(k)]));
        }
    const uint64_t total = uint64_t(frames) * uint64_t(sessions);
    while (client.counters().frames < total && Clock::now() - wall0 < std::chrono::seconds(60))
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double cpu_us = double(std::clock() - cpu0) / CLOCKS_PER_SEC * 1e6;
    const double wall_s = std::chrono::duration<double>(Clock::now() - wall0).count();
    const ClientCounters c = client.counters();
    std::printf("through loopback TCP: %llu of %llu frames in %.2f s (%.0f frames/s, %.0fx the %d sessions' real "
                "time); process CPU %.2f us per frame, publisher included; bad bodies %llu\n",
                (unsigned long long)c.frames, (unsigned long long)total, wall_s, double(c.frames) / wall_s,
                double(c.frames) / wall_s / (30.0 * sessions), sessions, cpu_us / double(c.frames),
                (unsigned long long)c.bad_total());

    // 3. audio out
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.bind("tcp://127.0.0.1:*");
    ClientOptions audio_opt;
    audio_opt.endpoints.audio_in = pull.get(zmq::sockopt::last_endpoint);
    audio_opt.endpoints.control = "tcp://127.0.0.1:1";  // no control requests in this bench
    audio_opt.silence_after_s = 0;
    uint64_t received = 0;
    std::atomic<bool> draining{true};
    pull.set(zmq::sockopt::rcvtimeo, 50);
    std::thread drain([&] {
        zmq::message_t m;
        while (draining)
            if (pull.recv(m)) ++received;
    });
    std::vector<double> audio_us;
    {
        Client sender(audio_opt);
        std::vector<std::string> names;
        for (int s = 0; s < sessions; ++s) names.push_back("npc-" + std::to_string(s)), sender.add(names.back());
        std::vector<float> block(800 * 2);  // 1/60 s of 48 kHz stereo
        for (size_t i = 0; i < block.size(); ++i) block[i] = 0.3f * std::sin(0.01f * float(i));
        const auto start = Clock::now();
        for (int tick = 0; tick < frames * 2; ++tick) {
            std::this_thread::sleep_until(start + std::chrono::microseconds(tick * 1000000LL / 60));  // as an engine
            const auto t0 = Clock::now();
            for (const std::string& name : names) {
                sender.send_audio(name, Track::Self, block.data(), 800, 2, 48000);
                sender.send_audio(name, Track::Other, block.data(), 800, 2, 48000);
            }
            audio_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        }
        const auto wait_until = Clock::now() + std::chrono::seconds(10);
        while (sender.counters().messages_sent + sender.counters().messages_dropped <
                   uint64_t(sessions) * 2 * uint64_t(seconds * 50) && Clock::now() < wait_until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::printf("audio out, %d sessions x 2 tracks of 48 kHz stereo, per 60 Hz tick: p50 %.1f us, p99 %.1f us, "
                    "max %.1f us; %llu chunks sent, %llu dropped\n",
                    sessions, percentile(audio_us, 0.5), percentile(audio_us, 0.99),
                    *std::max_element(audio_us.begin(), audio_us.end()),
                    (unsigned long long)sender.counters().messages_sent,
                    (unsigned long long)sender.counters().messages_dropped);
    }
    draining = false;
    drain.join();
    return sink == 12345.f;  // keeps the blending from being optimised away
}
