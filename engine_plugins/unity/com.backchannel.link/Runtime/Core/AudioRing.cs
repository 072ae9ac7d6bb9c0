// Audio from a real-time thread (Unity's OnAudioFilterRead) to the thread that chunks and sends it, without a lock
// or an allocation on the audio thread: one writer, one reader, a fixed buffer. A block that does not fit is dropped
// whole (counted), so interleaved frames stay aligned.
using System.Threading;

namespace Backchannel.Link
{
    public sealed class AudioRing
    {
        readonly float[] buffer;
        long written, read;  // samples ever written / read; each changed by its own thread only
        public long Dropped;  // samples dropped because the reader fell behind

        public AudioRing(int capacity) { buffer = new float[capacity]; }

        public int Capacity { get { return buffer.Length; } }

        public int Available { get { return (int)(Volatile.Read(ref written) - Volatile.Read(ref read)); } }

        /// <summary>The writer's side: all of data[offset..offset+count), or none of it (false).</summary>
        public bool Write(float[] data, int offset, int count)
        {
            long w = written;  // only this thread changes it
            if (count > buffer.Length - (int)(w - Volatile.Read(ref read))) { Interlocked.Add(ref Dropped, count); return false; }
            int start = (int)(w % buffer.Length), first = System.Math.Min(count, buffer.Length - start);
            System.Array.Copy(data, offset, buffer, start, first);
            System.Array.Copy(data, offset + first, buffer, 0, count - first);
            Volatile.Write(ref written, w + count);  // publishes the samples copied above
            return true;
        }

        /// <summary>The reader's side: up to `count` samples into dest; how many.</summary>
        public int Read(float[] dest, int offset, int count)
        {
            long r = read;
            int n = System.Math.Min(count, (int)(Volatile.Read(ref written) - r));
            int start = (int)(r % buffer.Length), first = System.Math.Min(n, buffer.Length - start);
            System.Array.Copy(buffer, start, dest, offset, first);
            System.Array.Copy(buffer, 0, dest, offset + first, n - first);
            Volatile.Write(ref read, r + n);  // frees the space only after the copy
            return n;
        }
    }
}
