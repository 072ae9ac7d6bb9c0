#if defined(_WIN32) && !defined(NOMINMAX)
#define NOMINMAX  // zmq.h includes winsock2.h, whose min and max macros would break std::min and std::max
#endif
#include "Backchannel/Client.h"

#include "Backchannel/AudioSender.h"

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace backchannel {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr const char* kWorkerStats = "_worker/stats";
constexpr const char* kMotionSuffix = "/motion";
constexpr double kUptimeSlack_s = 0.5;  // uptime going back by more than this: a new worker
constexpr double kStalled_s = 0.25;  // no audio taken this long: the worker went away (bridge/client.py STALLED_S)

// The quoted value of `name = "..."` in a ZeroMQ certificate file, or "".
std::string certificate_field(const std::string& path, const std::string& name) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        const size_t at = line.find(name);
        const size_t open = line.find('"', at);
        const size_t close = open == std::string::npos ? open : line.find('"', open + 1);
        if (at != std::string::npos && close != std::string::npos && line.find('=', at) < open)
            return line.substr(open + 1, close - open - 1);
    }
    return "";
}

void apply_keys(zmq::socket_t& sock, const CurveKeys& keys) {
    if (!keys.enabled()) return;
    sock.set(zmq::sockopt::curve_serverkey, keys.server_public);
    sock.set(zmq::sockopt::curve_publickey, keys.client_public);
    sock.set(zmq::sockopt::curve_secretkey, keys.client_secret);
}

}  // namespace

bool CurveKeys::from_files(const std::string& server_key, const std::string& client_key_secret, CurveKeys& out,
                           std::string& error) {
    out.server_public = certificate_field(server_key, "public-key");
    out.client_public = certificate_field(client_key_secret, "public-key");
    out.client_secret = certificate_field(client_key_secret, "secret-key");
    for (const std::string* key : {&out.server_public, &out.client_public, &out.client_secret})
        if (key->size() != 40) {
            error = "no 40-character public-key in " + server_key + " or public-key and secret-key in " +
                    client_key_secret;
            return false;
        }
    return true;
}

struct Session {
    std::string token;
    SessionSettings settings;
    bool opened = false;  // by open(): opened again after a worker restart
    bool ended = false;
    FrameBuffer frames;
    Playhead playhead;
    std::unique_ptr<AudioTrackSender> tracks[2];
    std::shared_ptr<AudioRing> rings[2];  // audio_ring's: drained into `tracks` by the I/O thread
    Clock::time_point track_start[2];
    Session(size_t kept, double delay_s) : frames(kept), playhead(delay_s) {}
};

struct Client::Impl {
    ClientOptions opt;
    zmq::context_t ctx;

    // control: one REQ socket, remade when a request goes unanswered
    std::mutex control_mutex;
    std::unique_ptr<zmq::socket_t> req;
    std::vector<uint8_t> request_bytes;

    // sessions, counters, subscription changes: under `m`
    mutable std::mutex m;
    std::map<std::string, Session, std::less<>> sessions;
    ClientCounters counters;
    std::vector<std::pair<std::string, bool>> subscription_changes;  // prefix, subscribe (false: unsubscribe)
    double last_uptime = -1;
    bool restart_pending = false;  // a new worker was seen: open this client's sessions again
    bool reopen_failed = false;  // that timed out: try again on the worker's next stats, not at once
    bool ready = false;
    std::condition_variable ready_cv;

    // audio waiting for the I/O thread: under `qm` (taken after `m` when both are held)
    std::mutex qm;
    std::deque<std::vector<uint8_t>> queue;

    std::mutex callback_mutex;
    std::function<void(const std::string&, const MotionFrame&)> callback;

    std::atomic<bool> running{true};
    std::thread io;

    // the I/O thread's own: audio held after a stall until the worker's stats show the subscription is back
    Clock::time_point stalled_since{};
    bool hold_for_stats = false;

    explicit Impl(ClientOptions o) : opt(std::move(o)) {
        if (!opt.all_sessions) subscription_changes.emplace_back(kWorkerStats, true);
        else subscription_changes.emplace_back("", true);
        io = std::thread([this] { run(); });
    }

    ~Impl() {
        running = false;
        io.join();
        std::lock_guard<std::mutex> lock(control_mutex);
        req.reset();
    }

    void enqueue(const uint8_t* data, size_t size) {
        std::lock_guard<std::mutex> lock(qm);
        if (queue.size() >= opt.max_queued_messages) {
            queue.pop_front();  // the oldest audio: a worker away this long has lost its place anyway
            ++dropped;
        }
        queue.emplace_back(data, data + size);
    }
    std::atomic<uint64_t> dropped{0};  // counted under qm, which may be held inside `m`: moved to counters later

    Session* find(std::string_view name) {
        auto it = sessions.find(name);
        return it == sessions.end() ? nullptr : &it->second;
    }

    Session& add_locked(const std::string& name, const std::string& token) {
        auto it = sessions.find(name);
        if (it == sessions.end()) {
            it = sessions.emplace(std::piecewise_construct, std::forward_as_tuple(name),
                                  std::forward_as_tuple(opt.frames_kept, opt.playhead_delay_s)).first;
            if (!opt.all_sessions) {
                subscription_changes.emplace_back(name + kMotionSuffix, true);
                ready = false;  // ready again once worker stats arrive after this subscription
            }
        }
        Session& s = it->second;
        if (s.token != token || s.ended) {
            // a session opened afresh (another owner, or after its end): its audio starts over at t = 0, seq 0
            s.tracks[0].reset();
            s.tracks[1].reset();
        }
        s.token = token;
        s.ended = false;
        return s;
    }

    AudioTrackSender* track_locked(const std::string& name, Session& s, Track track, int rate) {
        auto& sender = s.tracks[int(track)];
        if (!sender) {
            if (rate < 4000 || rate > 192000) return nullptr;
            sender.reset(new AudioTrackSender(
                name, s.token, track, rate, [this](const uint8_t* d, size_t n) { enqueue(d, n); }, opt.chunk_ms,
                opt.format));
            s.track_start[int(track)] = Clock::now();
        }
        return sender->sample_rate() == rate ? sender.get() : nullptr;
    }

    // The rings' audio into their tracks, under `m` (so the one reader at a time a ring allows).
    std::vector<float> ring_scratch = std::vector<float>(4096);
    void drain_rings_locked() {
        for (auto& entry : sessions) drain_locked(entry.first, entry.second);
    }
    void drain_locked(const std::string& name, Session& s) {
        for (int k = 0; k < 2; ++k) {
            AudioRing* ring = s.rings[k].get();
            if (!ring || !ring->available()) continue;
            AudioTrackSender* sender = s.ended ? nullptr : track_locked(name, s, Track(k), ring->sample_rate());
            while (size_t n = ring->read(ring_scratch.data(), ring_scratch.size()))
                if (sender) sender->push(ring_scratch.data(), n, 1);  // an ended session's audio goes nowhere
        }
    }

    // ---- control (lazy pirate: an unanswered request costs the socket, then tries again on a new one)
    ControlReply request(const std::string& type, const std::string& session, const std::string& token,
                         const SessionSettings* settings) {
        std::lock_guard<std::mutex> lock(control_mutex);
        encode_request(request_bytes, type, session, token, settings);
        for (int attempt = 0; attempt < std::max(1, opt.control_tries); ++attempt) {
            try {
                if (!req) {
                    req.reset(new zmq::socket_t(ctx, zmq::socket_type::req));
                    req->set(zmq::sockopt::linger, 0);
                    apply_keys(*req, opt.keys);
                    req->connect(opt.endpoints.control);
                }
                req->send(zmq::buffer(request_bytes), zmq::send_flags::dontwait);
                zmq::pollitem_t item{req->handle(), 0, ZMQ_POLLIN, 0};
                if (zmq::poll(&item, 1, std::chrono::milliseconds(long(opt.control_timeout_s * 1000))) > 0) {
                    zmq::message_t reply;
                    if (req->recv(reply)) return decode_reply(reply.data(), reply.size());
                }
            } catch (const zmq::error_t&) {
                // EAGAIN on send (nobody connected yet) or an interrupted poll: treated as no answer
            }
            req.reset();
            std::lock_guard<std::mutex> counters_lock(m);
            ++counters.control_timeouts;
        }
        ControlReply reply;
        reply.error = "timeout";
        reply.message = "no answer from the worker at " + opt.endpoints.control + " to " + type;
        return reply;
    }

    // `open`, and when the session is there already (a try whose reply was lost, or a restarted worker that
    // opened it on its first audio) `set` with the same token: it is ours if the worker takes that.
    ControlReply open_or_set(const std::string& name, const std::string& token, const SessionSettings& settings) {
        ControlReply reply = request("open", name, token, &settings);
        if (!reply.ok && reply.error == "session_exists") {
            reply = request("set", name, token, &settings);
            if (reply.ok) reply.token = token;
        }
        return reply;
    }

    void reopen_after_restart() {
        std::vector<std::tuple<std::string, std::string, SessionSettings>> todo;
        {
            std::lock_guard<std::mutex> lock(m);
            restart_pending = false;
            for (auto& entry : sessions)
                if (entry.second.opened && !entry.second.ended)
                    todo.emplace_back(entry.first, entry.second.token, entry.second.settings);
        }
        for (auto& item : todo) {
            ControlReply reply = open_or_set(std::get<0>(item), std::get<1>(item), std::get<2>(item));
            std::lock_guard<std::mutex> lock(m);
            if (reply.ok) {
                ++counters.reopened;
            } else if (reply.error == "timeout") {
                reopen_failed = true;  // no worker on the control socket: audio and frames go on meanwhile
                return;
            }
        }
    }

    // ---- the I/O thread
    void run() {
        zmq::socket_t push(ctx, zmq::socket_type::push), sub(ctx, zmq::socket_type::sub);
        for (zmq::socket_t* sock : {&push, &sub}) {
            sock->set(zmq::sockopt::linger, 500);
            sock->set(zmq::sockopt::heartbeat_ivl, 1000);  // a worker whose machine vanished is noticed
            sock->set(zmq::sockopt::heartbeat_timeout, 3000);
            apply_keys(*sock, opt.keys);
        }
        sub.set(zmq::sockopt::rcvhwm, 100000);  // bursts of frames (audio sent faster than real time) are kept
        // audio waits in our queue, not in a pipe to a worker that is gone: a restarted worker gets it only when
        // send_queued lets it go, after the subscription is back (PROTOCOL.md, "Reconnecting after a worker restart")
        push.set(zmq::sockopt::immediate, 1);
        push.connect(opt.endpoints.audio_in);
        sub.connect(opt.endpoints.motion_out);
        BodyDecoder decoder;
        MotionFrame frame;
        zmq::message_t topic, body, extra;
        Clock::time_point stop_at{};
        while (true) {
            if (!running && stop_at == Clock::time_point{}) stop_at = Clock::now() + std::chrono::milliseconds(500);
            apply_subscriptions(sub);
            {
                std::lock_guard<std::mutex> lock(m);
                drain_rings_locked();
            }
            top_up_silence();
            bool backlog = send_queued(push);
            if (!running && (!backlog || Clock::now() > stop_at)) break;
            zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
            try {
                zmq::poll(&item, 1, std::chrono::milliseconds(backlog ? 2 : 10));
            } catch (const zmq::error_t&) {
                continue;  // EINTR
            }
            while (sub.recv(topic, zmq::recv_flags::dontwait)) {
                if (!topic.more() || !sub.recv(body, zmq::recv_flags::dontwait)) {
                    std::lock_guard<std::mutex> lock(m);
                    ++counters.bad_multipart;
                    continue;
                }
                if (body.more()) {
                    while (body.more() && sub.recv(extra, zmq::recv_flags::dontwait)) body.swap(extra);
                    std::lock_guard<std::mutex> lock(m);
                    ++counters.bad_multipart;
                    continue;
                }
                handle(std::string_view(static_cast<const char*>(topic.data()), topic.size()), body, decoder, frame);
            }
            bool reopen;
            {
                std::lock_guard<std::mutex> lock(m);
                reopen = restart_pending;
            }
            if (reopen && running) reopen_after_restart();
        }
    }

    void apply_subscriptions(zmq::socket_t& sub) {
        std::lock_guard<std::mutex> lock(m);
        for (auto& change : subscription_changes) {
            if (change.second) sub.set(zmq::sockopt::subscribe, change.first);
            else sub.set(zmq::sockopt::unsubscribe, change.first);
        }
        subscription_changes.clear();
    }

    // true when audio is still waiting (no worker takes it now, or held until the subscription is back)
    bool send_queued(zmq::socket_t& push) {
        size_t sent = 0;
        bool backlog = false;
        if (hold_for_stats) {
            backlog = true;  // after a stall: a new worker would publish this audio's frames before our SUB listens
        } else {
            std::lock_guard<std::mutex> lock(qm);
            while (!queue.empty()) {
                zmq::send_result_t ok;
                try {
                    ok = push.send(zmq::buffer(queue.front()), zmq::send_flags::dontwait);
                } catch (const zmq::error_t&) {
                    ok = {};
                }
                if (!ok) {
                    backlog = true;
                    break;
                }
                queue.pop_front();
                ++sent;
            }
        }
        if (!backlog || sent) {
            stalled_since = Clock::time_point{};
        } else if (!hold_for_stats) {
            // no worker took anything for a while: it went away (a restart) or never came; whoever takes the audio
            // next, its frames are only sent once its stats reached our SUB (then every subscription has too)
            if (stalled_since == Clock::time_point{}) stalled_since = Clock::now();
            else if (seconds_since(stalled_since) >= kStalled_s) hold_for_stats = true;
        }
        const uint64_t lost = dropped.exchange(0);
        if (sent || lost) {
            std::lock_guard<std::mutex> lock(m);
            counters.messages_sent += sent;
            counters.messages_dropped += lost;
        }
        return backlog;
    }

    void top_up_silence() {
        if (opt.silence_after_s <= 0) return;
        std::lock_guard<std::mutex> lock(m);
        for (auto& entry : sessions) {
            Session& s = entry.second;
            if (s.ended) continue;
            for (int k = 0; k < 2; ++k) {
                AudioTrackSender* sender = s.tracks[k].get();
                if (!sender) continue;
                const double due = seconds_since(s.track_start[k]) - opt.silence_after_s;
                const double have = double(sender->samples()) / sender->sample_rate();
                if (have < due) {
                    size_t n = size_t((due - have) * sender->sample_rate());
                    sender->push_silence(n);
                    counters.silence_samples += n;
                }
            }
        }
    }

    void handle(std::string_view topic, const zmq::message_t& body, BodyDecoder& decoder, MotionFrame& frame) {
        if (topic == kWorkerStats) {
            double uptime = 0;
            BodyError error = decoder.worker_stats(body.data(), body.size(), uptime);
            std::lock_guard<std::mutex> lock(m);
            if (error != BodyError::None) {
                ++counters.bad_bodies[size_t(error)];
                return;
            }
            ++counters.worker_stats;
            if (hold_for_stats) {
                hold_for_stats = false;  // this worker's stats reached us: so will the frames of the held audio
                stalled_since = Clock::time_point{};
            }
            if (reopen_failed) {
                reopen_failed = false;
                restart_pending = true;
            }
            if (last_uptime >= 0 && uptime < last_uptime - kUptimeSlack_s) {
                ++counters.worker_restarts;
                restart_pending = true;
            }
            last_uptime = uptime;
            ready = true;
            ready_cv.notify_all();
            return;
        }
        const size_t suffix = std::char_traits<char>::length(kMotionSuffix);
        if (topic.size() <= suffix || topic.substr(topic.size() - suffix) != kMotionSuffix) return;  // stats, latent...
        const std::string_view name = topic.substr(0, topic.size() - suffix);
        BodyError error = decoder.motion(body.data(), body.size(), frame);
        {
            std::lock_guard<std::mutex> lock(m);
            if (error != BodyError::None) {
                ++counters.bad_bodies[size_t(error)];
                return;
            }
            Session* s = find(name);
            if (!s) {
                if (!opt.all_sessions || !valid_session_name(std::string(name))) return;
                s = &add_locked(std::string(name), "");
            }
            const int64_t before = s->frames.empty() ? -1 : s->frames.newest().seq;
            switch (s->frames.push(frame)) {
                case PushResult::Duplicate: ++counters.duplicate_frames; return;
                case PushResult::Restarted: ++counters.restarted_streams; s->playhead.reset(); break;
                case PushResult::Added:
                    if (before >= 0 && frame.seq > before + 1) ++counters.seq_gaps;
            }
            ++counters.frames;
        }
        std::lock_guard<std::mutex> lock(callback_mutex);
        if (callback) callback(std::string(name), frame);
    }
};

Client::Client(ClientOptions options) : impl_(new Impl(std::move(options))) {}
Client::~Client() = default;

ControlReply Client::request(const std::string& type, const std::string& session, const std::string& token,
                             const SessionSettings* settings) {
    return impl_->request(type, session, token, settings);
}

ControlReply Client::open(const std::string& session, const SessionSettings& settings, const std::string& token) {
    if (!valid_session_name(session)) {
        ControlReply reply;
        reply.error = "bad_session";
        reply.message = "session names are 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit";
        return reply;
    }
    const std::string owner = token.empty() ? random_token() : token;  // ours, so a retried open stays ours
    {
        std::lock_guard<std::mutex> lock(impl_->m);
        Session& s = impl_->add_locked(session, owner);
        s.settings = settings;
        s.opened = true;
    }
    ControlReply reply = impl_->open_or_set(session, owner, settings);
    if (!reply.ok) {
        std::lock_guard<std::mutex> lock(impl_->m);
        if (Session* s = impl_->find(session)) s->opened = false;
    }
    return reply;
}

ControlReply Client::set(const std::string& session, const SessionSettings& settings) {
    std::string token;
    {
        std::lock_guard<std::mutex> lock(impl_->m);
        if (Session* s = impl_->find(session)) token = s->token;
    }
    ControlReply reply = impl_->request("set", session, token, &settings);
    if (reply.ok) {
        std::lock_guard<std::mutex> lock(impl_->m);
        if (Session* s = impl_->find(session)) s->settings = settings;
    }
    return reply;
}

ControlReply Client::close(const std::string& session) {
    std::string token;
    {
        std::lock_guard<std::mutex> lock(impl_->m);
        if (Session* s = impl_->find(session)) {
            token = s->token;
            impl_->drain_locked(session, *s);
            for (auto& track : s->tracks)
                if (track) track->flush();
            s->ended = true;
        }
    }
    // audio still queued would reach the worker after the close and open the session again
    const auto deadline = Clock::now() + std::chrono::milliseconds(long(impl_->opt.control_timeout_s * 1000));
    while (Clock::now() < deadline) {
        {
            std::lock_guard<std::mutex> lock(impl_->qm);
            if (impl_->queue.empty()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return impl_->request("close", session, token, nullptr);
}

void Client::add(const std::string& session, const std::string& token) {
    std::lock_guard<std::mutex> lock(impl_->m);
    impl_->add_locked(session, token);
}

void Client::end(const std::string& session) {
    std::lock_guard<std::mutex> lock(impl_->m);
    Session* s = impl_->find(session);
    if (!s || s->ended) return;
    impl_->drain_locked(session, *s);
    for (auto& track : s->tracks)
        if (track) track->flush();
    std::vector<uint8_t> message;
    encode_end(message, session, s->token);
    impl_->enqueue(message.data(), message.size());
    s->ended = true;
}

void Client::remove(const std::string& session) {
    std::lock_guard<std::mutex> lock(impl_->m);
    if (impl_->sessions.erase(session) && !impl_->opt.all_sessions)
        impl_->subscription_changes.emplace_back(session + kMotionSuffix, false);
}

std::vector<std::string> Client::sessions() const {
    std::lock_guard<std::mutex> lock(impl_->m);
    std::vector<std::string> names;
    for (auto& entry : impl_->sessions) names.push_back(entry.first);
    return names;
}

void Client::sessions(std::vector<std::string>& out) const {
    std::lock_guard<std::mutex> lock(impl_->m);
    out.resize(impl_->sessions.size());  // shrinking keeps the capacity; growing allocates only past it
    size_t k = 0;
    for (auto& entry : impl_->sessions) out[k++].assign(entry.first);  // reuses each string's buffer
}

std::shared_ptr<AudioRing> Client::audio_ring(const std::string& session, Track track, size_t capacity) {
    std::lock_guard<std::mutex> lock(impl_->m);
    Session* s = impl_->find(session);
    if (!s) return nullptr;
    auto& ring = s->rings[int(track)];
    if (!ring) ring = std::make_shared<AudioRing>(capacity);
    return ring;
}

std::string Client::token(const std::string& session) const {
    std::lock_guard<std::mutex> lock(impl_->m);
    auto it = impl_->sessions.find(session);
    return it == impl_->sessions.end() ? std::string() : it->second.token;
}

bool Client::send_audio(const std::string& session, Track track, const float* samples, size_t frames, int channels,
                        int sample_rate) {
    std::lock_guard<std::mutex> lock(impl_->m);
    Session* s = impl_->find(session);
    if (!s || s->ended) return false;
    AudioTrackSender* sender = impl_->track_locked(session, *s, track, sample_rate);
    if (!sender) return false;
    sender->push(samples, frames, channels);
    return true;
}

bool Client::send_silence(const std::string& session, Track track, size_t frames, int sample_rate) {
    std::lock_guard<std::mutex> lock(impl_->m);
    Session* s = impl_->find(session);
    if (!s || s->ended) return false;
    AudioTrackSender* sender = impl_->track_locked(session, *s, track, sample_rate);
    if (!sender) return false;
    sender->push_silence(frames);
    return true;
}

double Client::audio_time(const std::string& session, Track track) const {
    std::lock_guard<std::mutex> lock(impl_->m);
    auto it = impl_->sessions.find(session);
    if (it == impl_->sessions.end() || !it->second.tracks[int(track)]) return -1;
    return it->second.tracks[int(track)]->time_s();
}

bool Client::sample(const std::string& session, double t, MotionFrame& out) const {
    std::lock_guard<std::mutex> lock(impl_->m);
    auto it = impl_->sessions.find(session);
    return it != impl_->sessions.end() && it->second.frames.sample(t, out);
}

bool Client::latest(const std::string& session, MotionFrame& out) const {
    std::lock_guard<std::mutex> lock(impl_->m);
    auto it = impl_->sessions.find(session);
    if (it == impl_->sessions.end() || it->second.frames.empty()) return false;
    out = it->second.frames.newest();
    return true;
}

bool Client::play(const std::string& session, double dt, MotionFrame& out) {
    std::lock_guard<std::mutex> lock(impl_->m);
    Session* s = impl_->find(session);
    if (!s || s->frames.empty()) return false;
    return s->frames.sample(s->playhead.advance(dt, s->frames.newest().t), out);
}

void Client::on_frame(std::function<void(const std::string&, const MotionFrame&)> callback) {
    std::lock_guard<std::mutex> lock(impl_->callback_mutex);
    impl_->callback = std::move(callback);
}

bool Client::wait_ready(double timeout_s) {
    std::unique_lock<std::mutex> lock(impl_->m);
    return impl_->ready_cv.wait_for(lock, std::chrono::duration<double>(timeout_s), [this] {
        return impl_->ready && impl_->subscription_changes.empty();
    });
}

ClientCounters Client::counters() const {
    std::lock_guard<std::mutex> lock(impl_->m);
    ClientCounters c = impl_->counters;
    for (auto& entry : impl_->sessions)
        for (auto& ring : entry.second.rings)
            if (ring) c.ring_dropped_samples += ring->dropped();
    return c;
}

const ClientOptions& Client::options() const { return impl_->opt; }

}  // namespace backchannel
