// One connection to a Backchannel worker for every session of a game: audio out (PUSH), motion in (SUB), control
// (REQ). A background thread owns the PUSH and SUB sockets; audio may be handed over from any thread (an engine's
// audio render thread, a capture callback), frames are read from any thread (the game thread's tick).
//
// Worker restarts are ridden out as PROTOCOL.md describes: ZeroMQ reconnects the sockets, audio that cannot be
// delivered meanwhile waits in a bounded queue (the oldest dropped beyond it), the sessions' clocks run on, and when
// the worker's uptime goes back (a new worker) every session this client opened is opened again with its token and
// settings, so the new worker resumes it where its audio stands.
#pragma once

#include "Backchannel/AudioRing.h"
#include "Backchannel/FrameBuffer.h"
#include "Backchannel/Protocol.h"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace backchannel {

struct Endpoints {
    std::string audio_in = "tcp://127.0.0.1:5555";
    std::string motion_out = "tcp://127.0.0.1:5556";
    std::string control = "tcp://127.0.0.1:5557";
};

// ZeroMQ CURVE keys (Z85 text, 40 characters each), for a worker bound beyond loopback (`serve --curve DIR`).
struct CurveKeys {
    std::string server_public;  // DIR/server.key
    std::string client_public, client_secret;  // DIR/NAME.key_secret holds both
    bool enabled() const { return !server_public.empty(); }
    // From `backchannel keys DIR` files: the worker's DIR/server.key and this client's DIR/NAME.key_secret
    // (ZeroMQ certificates: `public-key = "..."`, `secret-key = "..."`). False, with the reason, if unreadable.
    static bool from_files(const std::string& server_key, const std::string& client_key_secret, CurveKeys& out,
                           std::string& error);
};

struct ClientOptions {
    Endpoints endpoints;
    CurveKeys keys;
    double control_timeout_s = 2.0;  // per try; a try without an answer remakes the REQ socket (lazy pirate)
    int control_tries = 3;
    double chunk_ms = 20.0;
    SampleFormat format = SampleFormat::S16LE;
    size_t max_queued_messages = 8192;  // audio held while no worker takes it (~2.5 s of 16 sessions x 2 tracks)
    size_t frames_kept = 64;  // per session
    // A track that has started and then receives nothing for this long is topped up with silence up to
    // (wall time since its start - this), so its session keeps producing frames (0: never).
    double silence_after_s = 0.25;
    bool all_sessions = false;  // receive every session's motion (a viewer), not only those added here
    double playhead_delay_s = 0.05;  // how far a playhead trails the newest frame
};

struct ClientCounters {
    uint64_t frames = 0;  // motion bodies decoded and buffered
    std::array<uint64_t, size_t(BodyError::Count)> bad_bodies{};  // per BodyError kind; [None] unused
    uint64_t bad_multipart = 0;  // messages that were not [topic, body]
    uint64_t duplicate_frames = 0;
    uint64_t restarted_streams = 0;  // a session's seq went back (opened afresh under the same name)
    uint64_t seq_gaps = 0;  // jumps forward in a session's seq (frames lost, e.g. with a restarted worker)
    uint64_t messages_sent = 0;
    uint64_t messages_dropped = 0;  // audio dropped because the queue was full while no worker took it
    uint64_t silence_samples = 0;  // put in by the silence top-up
    uint64_t worker_stats = 0;
    uint64_t worker_restarts = 0;  // seen as the worker's uptime going back
    uint64_t reopened = 0;  // sessions opened again after a restart
    uint64_t control_timeouts = 0;
    uint64_t ring_dropped_samples = 0;  // audio an audio_ring could not hold (its reader fell a whole ring behind)
    uint64_t bad_total() const {
        uint64_t n = bad_multipart;
        for (uint64_t c : bad_bodies) n += c;
        return n;
    }
};

class Client {
  public:
    explicit Client(ClientOptions options = {});
    ~Client();  // stops the thread; queued audio gets up to half a second to leave
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // ---- control: blocking (up to control_timeout_s x control_tries); call it off the game and audio threads.
    ControlReply request(const std::string& type, const std::string& session = "", const std::string& token = "",
                         const SessionSettings* settings = nullptr);
    // Opens a session with its settings and adds it here; `token` empty: a fresh random one. The settings and
    // token are kept to open it again after a worker restart.
    ControlReply open(const std::string& session, const SessionSettings& settings = {}, const std::string& token = "");
    ControlReply set(const std::string& session, const SessionSettings& settings);
    // Closes over the control socket (the final frames are published before the reply) and stops its audio.
    ControlReply close(const std::string& session);

    // ---- sessions without `open`: they open themselves on their first audio (with this token, if any).
    void add(const std::string& session, const std::string& token = "");
    // Ends the session's audio on the audio socket (held samples, then `end`): the worker publishes its last
    // frames. Its buffered frames stay readable until remove().
    void end(const std::string& session);
    void remove(const std::string& session);
    std::vector<std::string> sessions() const;
    // The same names into `out`, its strings and capacity reused: no allocation once it has held as many (a tick).
    void sessions(std::vector<std::string>& out) const;
    std::string token(const std::string& session) const;

    // ---- audio: any thread. Interleaved floats, mixed to mono; a track's rate is fixed by its first call.
    // False (and nothing sent) for a session not added, a bad rate, or a rate that changed.
    bool send_audio(const std::string& session, Track track, const float* samples, size_t frames, int channels,
                    int sample_rate);
    bool send_silence(const std::string& session, Track track, size_t frames, int sample_rate);
    // For an audio render or capture thread: the session track's ring (AudioRing.h), written without a lock and
    // drained by the client's own thread into the track (within its 10 ms poll). One writer thread per ring; the
    // first write's rate fixes the track's. Null for a session not added. Keep it while writing: the client's copy
    // goes with remove(), the ring lives on until the writer lets go of it too.
    std::shared_ptr<AudioRing> audio_ring(const std::string& session, Track track, size_t capacity = 1 << 16);
    // Seconds of audio handed over for a track (its clock), -1 if it has not started.
    double audio_time(const std::string& session, Track track) const;

    // ---- motion: any thread.
    bool sample(const std::string& session, double t, MotionFrame& out) const;  // blended at audio time t
    bool latest(const std::string& session, MotionFrame& out) const;
    // Advances the session's playhead by `dt` seconds of wall time and samples there (an engine's tick).
    bool play(const std::string& session, double dt, MotionFrame& out);
    // Every decoded frame as it arrives, on the client's thread (tools and tests; keep it short).
    void on_frame(std::function<void(const std::string& session, const MotionFrame& frame)> callback);

    // True once the worker's stats have come through the subscription: from then on no frame is missed.
    bool wait_ready(double timeout_s);
    ClientCounters counters() const;
    const ClientOptions& options() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace backchannel
