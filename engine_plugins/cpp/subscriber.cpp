// Minimal Backchannel motion subscriber in C++ (cppzmq + a tiny hand-written msgpack reader, no other libraries).
//
//   g++ -std=c++17 -O2 subscriber.cpp -lzmq -o backchannel-subscriber
//   ./backchannel-subscriber tcp://127.0.0.1:5556 [SESSION] [MAX_FRAMES]
//
// Subscribes to "<SESSION>/motion" (every session when SESSION is "" or absent) and prints one line per frame:
//   frame session=npc-7 seq=12 t=0.400000 state=speaking jaw_open=0.231000 blendshapes=52 head=[p y r] published=...
//         weights=[w0 w1 ... w51]
// (one line; weights: every blendshape weight in ARKit order, to 9 significant digits, as exact as the float32s sent)
// It also subscribes to the worker's "_worker/stats" and prints "ready" on the first one: from then on its
// subscription is live (ZeroMQ drops what a PUB sends before a SUB's subscription has reached it).
// An engine plugin does the same in its networking thread and hands frames to the animation thread.
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

// --- a msgpack value and reader: just the types protocol v1 uses (maps, arrays, strings, ints, floats, bools) ---
// The bytes come from the network: the reader never reads past the message, refuses counts the message cannot hold
// and nesting deeper than protocol v1 uses (recursion on hostile input would overflow the stack).
struct Value {
    enum Kind { Nil, Bool, Int, Float, Str, Bin, Array, Map } kind = Nil;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;  // Str and Bin
    std::vector<Value> items;  // Array
    std::map<std::string, Value> fields;  // Map (string keys only, as the protocol uses)

    double number() const { return kind == Float ? f : kind == Int ? double(i) : throw std::runtime_error("not a number"); }
    const Value& operator[](const std::string& key) const {
        auto it = fields.find(key);
        if (it == fields.end()) throw std::runtime_error("missing field " + key);
        return it->second;
    }
};

class Reader {
  public:
    static constexpr int kMaxDepth = 8;  // protocol v1 nests two deep (a body map holding arrays)

    Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

    Value read(int depth = 0) {
        if (depth > kMaxDepth) throw std::runtime_error("msgpack nested too deep");
        uint8_t tag = byte();
        Value v;
        if (tag <= 0x7f) { v.kind = Value::Int; v.i = tag; }
        else if (tag >= 0xe0) { v.kind = Value::Int; v.i = int8_t(tag); }
        else if ((tag & 0xf0) == 0x80) return map(tag & 0x0f, depth);
        else if ((tag & 0xf0) == 0x90) return array(tag & 0x0f, depth);
        else if ((tag & 0xe0) == 0xa0) return str(tag & 0x1f, Value::Str);
        else switch (tag) {
            case 0xc0: break;
            case 0xc2: case 0xc3: v.kind = Value::Bool; v.b = tag == 0xc3; break;
            case 0xc4: return str(uint(1), Value::Bin);
            case 0xc5: return str(uint(2), Value::Bin);
            case 0xc6: return str(uint(4), Value::Bin);
            case 0xca: { uint32_t u = uint32_t(uint(4)); float x; std::memcpy(&x, &u, 4); v.kind = Value::Float; v.f = x; break; }
            case 0xcb: { uint64_t u = uint(8); double x; std::memcpy(&x, &u, 8); v.kind = Value::Float; v.f = x; break; }
            case 0xcc: v.kind = Value::Int; v.i = int64_t(uint(1)); break;
            case 0xcd: v.kind = Value::Int; v.i = int64_t(uint(2)); break;
            case 0xce: v.kind = Value::Int; v.i = int64_t(uint(4)); break;
            case 0xcf: v.kind = Value::Int; v.i = int64_t(uint(8)); break;
            case 0xd0: v.kind = Value::Int; v.i = int8_t(uint(1)); break;
            case 0xd1: v.kind = Value::Int; v.i = int16_t(uint(2)); break;
            case 0xd2: v.kind = Value::Int; v.i = int32_t(uint(4)); break;
            case 0xd3: v.kind = Value::Int; v.i = int64_t(uint(8)); break;
            case 0xd9: return str(uint(1), Value::Str);
            case 0xda: return str(uint(2), Value::Str);
            case 0xdb: return str(uint(4), Value::Str);
            case 0xdc: return array(uint(2), depth);
            case 0xdd: return array(uint(4), depth);
            case 0xde: return map(uint(2), depth);
            case 0xdf: return map(uint(4), depth);
            default: throw std::runtime_error("msgpack type not used by protocol v1");
        }
        return v;
    }

  private:
    uint8_t byte() {
        if (p_ >= end_) throw std::runtime_error("truncated msgpack");
        return *p_++;
    }
    uint64_t uint(int n) {  // big-endian unsigned of n bytes
        uint64_t u = 0;
        for (int k = 0; k < n; ++k) u = (u << 8) | byte();
        return u;
    }
    uint64_t left() const { return uint64_t(end_ - p_); }
    Value str(uint64_t n, Value::Kind kind) {
        if (left() < n) throw std::runtime_error("truncated msgpack string");
        Value v;
        v.kind = kind;
        v.s.assign(reinterpret_cast<const char*>(p_), size_t(n));
        p_ += n;
        return v;
    }
    Value array(uint64_t n, int depth) {
        if (n > left()) throw std::runtime_error("msgpack array longer than its message");  // items take >= 1 byte
        Value v;
        v.kind = Value::Array;
        v.items.reserve(size_t(n));
        for (uint64_t k = 0; k < n; ++k) v.items.push_back(read(depth + 1));
        return v;
    }
    Value map(uint64_t n, int depth) {
        if (n > left() / 2) throw std::runtime_error("msgpack map longer than its message");  // entries take >= 2
        Value v;
        v.kind = Value::Map;
        for (uint64_t k = 0; k < n; ++k) {
            Value key = read(depth + 1);
            if (key.kind != Value::Str) throw std::runtime_error("non-string map key");
            v.fields[key.s] = read(depth + 1);
        }
        return v;
    }
    const uint8_t* p_;
    const uint8_t* end_;
};

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

    bool ready = false;
    long frames = 0;
    while (max_frames < 0 || frames < max_frames) {
        std::vector<zmq::message_t> parts;
        if (!zmq::recv_multipart(sub, std::back_inserter(parts)) || parts.size() != 2) continue;
        const std::string topic = parts[0].to_string();
        const std::string suffix = "/motion";
        if (topic == "_worker/stats") {
            if (!ready) std::printf("ready\n");
            ready = true;
        } else if (topic.size() > suffix.size() && topic.compare(topic.size() - suffix.size(), suffix.size(), suffix) == 0) {
            try {
                Reader reader(static_cast<const uint8_t*>(parts[1].data()), parts[1].size());
                const Value body = reader.read();
                const Value& bs = body["blendshapes"];
                const Value& head = body["head_rotation"];
                std::string weights;
                for (const Value& w : bs.items) {
                    char number[32];
                    std::snprintf(number, sizeof number, weights.empty() ? "%.9g" : " %.9g", w.number());
                    weights += number;
                }
                std::printf("frame session=%s seq=%lld t=%.6f state=%s jaw_open=%.6f blendshapes=%zu "
                            "head=[%.6f %.6f %.6f] published=%.6f weights=[%s]\n",
                            topic.substr(0, topic.size() - suffix.size()).c_str(), (long long)body["seq"].i,
                            body["t"].number(), body["state"].s.c_str(), bs.items.at(jaw_open).number(),
                            bs.items.size(), head.items.at(0).number(), head.items.at(1).number(),
                            head.items.at(2).number(), body["published"].number(), weights.c_str());
                ++frames;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bad frame on %s: %s\n", topic.c_str(), e.what());
            }
        }
        std::fflush(stdout);
    }
    return 0;
}
