// Audio to protocol messages: any rate and channel count in, mono 16-bit chunks of `chunkMs` out, each stamped
// with the track's audio clock (t = samples sent so far / rate, plus where the track started) and its seq. The
// clock counts audio, not wall time, as the protocol asks; an engine that stops feeding (a paused game) should
// feed silence or call Skip.
using System;
using System.Collections.Generic;

namespace Backchannel.Link
{
    public sealed class AudioChunker
    {
        readonly object gate = new object();
        readonly string session, track;
        readonly int rate, channels, chunkSamples;
        readonly short[] pending;
        int filled;
        long seq, sent;  // chunks made, samples sent
        public double StartSeconds;  // session time of the track's first sample
        public string Token;  // the session's owner token (open's reply)

        public AudioChunker(string session, string track, int rate, int channels = 1, double chunkMs = 20)
        {
            if (track != "self" && track != "other") throw new ArgumentException("track is self or other");
            if (rate < 4000 || rate > 192000) throw new ArgumentException("rate outside 4000..192000 Hz");
            if (channels < 1) throw new ArgumentException("channels >= 1");
            this.session = session; this.track = track; this.rate = rate; this.channels = channels;
            chunkSamples = Math.Max(1, (int)Math.Round(rate * chunkMs / 1000));
            pending = new short[chunkSamples];
        }

        public long Seq { get { lock (gate) return seq; } }

        /// <summary>Audio time of the next sample, seconds.</summary>
        public double Time { get { lock (gate) return StartSeconds + (double)(sent + filled) / rate; } }

        /// <summary>Interleaved float samples (-1..1), mixed to mono; whole chunks come out as messages.</summary>
        public List<byte[]> Push(float[] data, int offset, int count)
        {
            var messages = new List<byte[]>();
            if (count % channels != 0) throw new ArgumentException("count must be a whole number of frames");
            lock (gate)
            {
                for (int i = offset; i < offset + count; i += channels)
                {
                    float sum = 0;
                    for (int c = 0; c < channels; c++) sum += data[i + c];
                    float v = sum / channels;
                    if (float.IsNaN(v)) v = 0;  // the worker refuses NaN; a glitching filter must not end the stream
                    pending[filled++] = (short)Math.Round(Math.Max(-1f, Math.Min(1f, v)) * 32767);
                    if (filled == chunkSamples) messages.Add(Take());
                }
            }
            return messages;
        }

        /// <summary>What is left as a last, shorter chunk (null when nothing is).</summary>
        public byte[] Flush()
        {
            lock (gate) return filled > 0 ? Take() : null;
        }

        /// <summary>Move the clock over `seconds` of audio never sent (the worker conceals the gap as silence).</summary>
        public void Skip(double seconds)
        {
            lock (gate) sent += (long)Math.Round(seconds * rate);
        }

        public byte[] End() { return Protocol.End(session, Token); }

        byte[] Take()
        {
            var pcm = new byte[filled * 2];
            for (int i = 0; i < filled; i++)
            {
                pcm[2 * i] = (byte)(pending[i] & 0xff);
                pcm[2 * i + 1] = (byte)((pending[i] >> 8) & 0xff);
            }
            var message = Protocol.Audio(session, track, seq, StartSeconds + (double)sent / rate, rate, pcm, Token);
            seq++;
            sent += filled;
            filled = 0;
            return message;
        }
    }
}
