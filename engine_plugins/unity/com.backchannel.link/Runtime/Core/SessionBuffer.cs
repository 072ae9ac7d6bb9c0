// A session's received frames, sampled at any time: an engine rendering at 60, 90 or 144 Hz gets a frame
// interpolated between the two 30 fps frames around its moment, played a little behind the newest arrival so there
// is always a next frame to interpolate towards.
using System;
using System.Collections.Generic;

namespace Backchannel.Link
{
    public sealed class SessionBuffer
    {
        readonly object gate = new object();
        readonly List<MotionFrame> frames = new List<MotionFrame>();  // by seq, newest last
        readonly int capacity;
        double offset = double.NaN;  // local clock - frame time, for the most promptly arrived recent frame
        public double DelaySeconds;  // how far behind the newest frame playback runs (default: 1.5 frames)

        public SessionBuffer(int capacity = 90, double delaySeconds = 1.5 / Protocol.FrameRate)
        {
            this.capacity = capacity;
            DelaySeconds = delaySeconds;
        }

        public int Count { get { lock (gate) return frames.Count; } }

        public MotionFrame Latest { get { lock (gate) return frames.Count > 0 ? frames[frames.Count - 1] : null; } }

        /// <summary>Keep a frame (in seq order; a repeat or an older one than the newest is dropped). A seq jump (a
        /// resumed session) restarts the clock.</summary>
        public void Add(MotionFrame frame)
        {
            lock (gate)
            {
                var newest = frames.Count > 0 ? frames[frames.Count - 1] : null;
                if (newest != null && frame.Seq <= newest.Seq) return;
                if (newest != null && frame.Seq - newest.Seq > Protocol.FrameRate) { frames.Clear(); offset = double.NaN; }
                frames.Add(frame);
                if (frames.Count > capacity) frames.RemoveAt(0);
                // the clock follows the earliest arrivals: a late frame must not pull playback later for good
                double o = frame.Received - frame.T;
                offset = double.IsNaN(offset) || o < offset ? o : offset + Math.Min(o - offset, 0.002);
            }
        }

        /// <summary>The frame to show at local time `now` (the clock frames' Received was stamped with), or null
        /// before the first. Holds the newest frame when playback catches up with it.</summary>
        public MotionFrame Sample(double now)
        {
            lock (gate)
            {
                if (frames.Count == 0) return null;
                return At(now - offset - DelaySeconds);
            }
        }

        /// <summary>The frame at audio time t, interpolated (held at either end).</summary>
        public MotionFrame At(double t)
        {
            lock (gate)
            {
                if (frames.Count == 0) return null;
                if (t <= frames[0].T) return frames[0];
                for (int i = frames.Count - 1; i > 0; i--)
                {
                    if (frames[i - 1].T <= t)
                    {
                        if (t >= frames[i].T) return frames[i];
                        var a = frames[i - 1];
                        var b = frames[i];
                        return MotionFrame.Lerp(a, b, (t - a.T) / (b.T - a.T));
                    }
                }
                return frames[frames.Count - 1];
            }
        }
    }
}
