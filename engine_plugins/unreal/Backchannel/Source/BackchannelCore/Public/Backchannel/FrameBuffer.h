// A session's recent motion frames, and the face at any time between them: the worker sends 30 frames per second of
// audio, an engine ticks at its own rate (60, 90, 144 Hz, or unevenly), so each tick samples the buffer.
#pragma once

#include "Backchannel/Protocol.h"

#include <cstddef>
#include <vector>

namespace backchannel {

// What push() did with a frame.
enum class PushResult : uint8_t { Added, Duplicate, Restarted };

class FrameBuffer {
  public:
    // `capacity`: frames kept (64 = 2 s at 30 fps); `max_gap_s`: two frames further apart than this (frames lost
    // while a worker restarted) are not blended: the earlier one holds until the later one's time.
    explicit FrameBuffer(size_t capacity = 64, double max_gap_s = 0.5);

    // Frames come in seq order from one worker. A seq at or below the newest is a duplicate and dropped, unless it
    // is more than a second behind it: then the session was opened afresh under the same name, and the buffer
    // starts over from this frame.
    PushResult push(const MotionFrame& frame);

    bool empty() const { return count_ == 0; }
    size_t size() const { return count_; }
    const MotionFrame& oldest() const { return at(0); }
    const MotionFrame& newest() const { return at(count_ - 1); }
    void clear() { count_ = 0; }

    // The face at audio time `t`: weights, translation and gaze blended linearly between the two frames around t,
    // head angles along the shorter arc; before the first frame the first holds, after the last the last holds.
    // `state` and `seq` are the earlier frame's. False when empty. Allocates nothing.
    bool sample(double t, MotionFrame& out) const;

  private:
    const MotionFrame& at(size_t i) const { return ring_[(start_ + i) % ring_.size()]; }
    std::vector<MotionFrame> ring_;
    size_t start_ = 0, count_ = 0;
    double max_gap_s_;
};

// Blends two frames: `w` = 0 gives `a`, 1 gives `b` (exposed for tests and for engines that blend themselves).
void blend(const MotionFrame& a, const MotionFrame& b, double w, MotionFrame& out);

// Where in a session's audio time an engine shows the face, advanced by each tick's wall time. It trails the newest
// frame by `delay_s` so that a frame to blend towards has usually arrived, eases towards that target when jitter
// moves it, and jumps when it is more than `snap_s` away (the first frame, a burst after a stall, a restart).
class Playhead {
  public:
    explicit Playhead(double delay_s = 0.05, double snap_s = 0.25) : delay_s_(delay_s), snap_s_(snap_s) {}
    // The time to sample after `dt` seconds of wall time, given the newest frame's time.
    double advance(double dt, double newest_t);
    void reset() { started_ = false; }
    double delay_s() const { return delay_s_; }

  private:
    double delay_s_, snap_s_, t_ = 0;
    bool started_ = false;
};

}  // namespace backchannel
