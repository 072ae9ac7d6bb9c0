#include "Backchannel/FrameBuffer.h"

#include <algorithm>
#include <cmath>

namespace backchannel {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kRestartBehind_s = 1.0;  // a seq this far behind the newest is a new stream, not a duplicate

float lerp(float a, float b, double w) { return float(a + (double(b) - a) * w); }

// Angles blended along the shorter way round, so a turn through +-pi does not spin the long way.
float lerp_angle(float a, float b, double w) {
    double d = std::remainder(double(b) - a, 2 * kPi);
    return float(a + d * w);
}
}  // namespace

void blend(const MotionFrame& a, const MotionFrame& b, double w, MotionFrame& out) {
    w = std::min(1.0, std::max(0.0, w));
    out.seq = a.seq;
    out.state = a.state;
    out.t = a.t + (b.t - a.t) * w;
    out.published = a.published + (b.published - a.published) * w;
    for (size_t i = 0; i < out.blendshapes.size(); ++i) out.blendshapes[i] = lerp(a.blendshapes[i], b.blendshapes[i], w);
    for (size_t i = 0; i < 3; ++i) out.head_rotation[i] = lerp_angle(a.head_rotation[i], b.head_rotation[i], w);
    for (size_t i = 0; i < 3; ++i) out.head_translation[i] = lerp(a.head_translation[i], b.head_translation[i], w);
    for (size_t i = 0; i < 4; ++i) out.gaze[i] = lerp_angle(a.gaze[i], b.gaze[i], w);
}

FrameBuffer::FrameBuffer(size_t capacity, double max_gap_s) : ring_(std::max<size_t>(capacity, 2)), max_gap_s_(max_gap_s) {}

PushResult FrameBuffer::push(const MotionFrame& frame) {
    PushResult result = PushResult::Added;
    if (count_ > 0 && frame.seq <= newest().seq) {
        if (frame.t > newest().t - kRestartBehind_s) return PushResult::Duplicate;
        count_ = 0;
        result = PushResult::Restarted;
    }
    if (count_ == ring_.size()) {
        start_ = (start_ + 1) % ring_.size();
        --count_;
    }
    ring_[(start_ + count_) % ring_.size()] = frame;
    ++count_;
    return result;
}

bool FrameBuffer::sample(double t, MotionFrame& out) const {
    if (count_ == 0) return false;
    if (t <= oldest().t) {
        out = oldest();
        return true;
    }
    if (t >= newest().t) {
        out = newest();
        return true;
    }
    // the last frame at or before t (frames are in time order)
    size_t lo = 0, hi = count_ - 1;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        (at(mid).t <= t ? lo : hi) = mid;
    }
    const MotionFrame& a = at(lo);
    const MotionFrame& b = at(hi);
    if (b.t - a.t > max_gap_s_) {
        out = a;
        return true;
    }
    blend(a, b, (t - a.t) / (b.t - a.t), out);
    return true;
}

double Playhead::advance(double dt, double newest_t) {
    const double target = newest_t - delay_s_;
    if (!started_ || std::fabs(t_ + dt - target) > snap_s_) {
        started_ = true;
        t_ = target;
        return t_;
    }
    t_ += dt;
    // ease a tenth of the way per 1/60 s towards the target: jitter in arrival does not show as jerks
    t_ += (target - t_) * std::min(1.0, dt * 6.0);
    return t_;
}

}  // namespace backchannel
