// A motion subscriber on the core's decoder: the smallest C++ peer of a worker, and what tests/test_cpp_client.py
// checks our stream with.
//
//   backchannel-subscribe ENDPOINT [SESSION] [MAX_FRAMES]
//
// Subscribes to "<SESSION>/motion" (every session when SESSION is "" or absent) and prints one line per frame:
//   frame session=npc-7 seq=12 t=0.400000 state=speaking jaw_open=0.231000 blendshapes=52 head=[p y r]
//         published=... weights=[w0 w1 ... w51]
// (one line; weights: every blendshape weight in ARKit order to 9 significant digits, as exact as the float32s).
// It also subscribes to the worker's "_worker/stats" and prints "ready" on the first one: from then on its
// subscription is live (ZeroMQ drops what a PUB sends before a SUB's subscription has reached it). A body the
// decoder refuses costs that message only: "bad frame on TOPIC: KIND: WHY" on stderr.
#include "Backchannel/Protocol.h"

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s ENDPOINT [SESSION] [MAX_FRAMES]\n", argv[0]);
        return 2;
    }
    const std::string endpoint = argv[1];
    const std::string session = argc > 2 ? argv[2] : "";
    const long max_frames = argc > 3 ? std::stol(argv[3]) : -1;
    const int jaw_open = 17;  // ARKit order: EyeBlinkLeft ... JawOpen is column 17 (see describe's "blendshapes")

    zmq::context_t ctx;
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, session.empty() ? std::string() : session + "/motion");
    sub.set(zmq::sockopt::subscribe, "_worker/stats");
    sub.connect(endpoint);

    backchannel::BodyDecoder decoder;
    backchannel::MotionFrame frame;
    const std::string suffix = "/motion";
    bool ready = false;
    long frames = 0;
    while (max_frames < 0 || frames < max_frames) {
        std::vector<zmq::message_t> parts;
        if (!zmq::recv_multipart(sub, std::back_inserter(parts)) || parts.size() != 2) continue;
        const std::string topic = parts[0].to_string();
        if (topic == "_worker/stats") {
            if (!ready) std::printf("ready\n");
            ready = true;
        } else if (topic.size() > suffix.size() && topic.compare(topic.size() - suffix.size(), suffix.size(), suffix) == 0) {
            backchannel::BodyError error = decoder.motion(parts[1].data(), parts[1].size(), frame);
            if (error != backchannel::BodyError::None) {
                std::fprintf(stderr, "bad frame on %s: %s: %s\n", topic.c_str(), backchannel::body_error_name(error),
                             decoder.last_error().c_str());
                continue;
            }
            std::string weights;
            for (float w : frame.blendshapes) {
                char number[32];
                std::snprintf(number, sizeof number, weights.empty() ? "%.9g" : " %.9g", double(w));
                weights += number;
            }
            std::printf("frame session=%s seq=%lld t=%.6f state=%s jaw_open=%.6f blendshapes=%zu "
                        "head=[%.6f %.6f %.6f] published=%.6f weights=[%s]\n",
                        topic.substr(0, topic.size() - suffix.size()).c_str(), (long long)frame.seq, frame.t,
                        backchannel::state_name(frame.state), double(frame.blendshapes[jaw_open]),
                        frame.blendshapes.size(), double(frame.head_rotation[0]), double(frame.head_rotation[1]),
                        double(frame.head_rotation[2]), frame.published, weights.c_str());
            ++frames;
        }
        std::fflush(stdout);
    }
    return 0;
}
