// Protocol v1 messages (engine_plugins/PROTOCOL.md) as the WebSocket door carries them: what a client sends, and
// the two kinds of frame it receives (a reply map, or a topic string followed by a published body).
using System;
using System.Collections.Generic;

namespace Backchannel.Link
{
    public sealed class ProtocolException : Exception
    {
        public readonly string Kind;  // the worker's error kind (session_exists, ...) when it refused a request
        public ProtocolException(string message, string kind = null) : base(message) { Kind = kind; }
    }

    public static class Protocol
    {
        public const int Version = 1;
        public const int FrameRate = 30;
        public const int Blendshapes = 52;
        public static readonly string[] Topics = { "motion", "latent", "frame", "stats" };

        public static byte[] Audio(string session, string track, long seq, double t, int rate, byte[] s16le, string token)
        {
            var msg = new Dictionary<string, object>
            {
                ["v"] = Version, ["type"] = "audio", ["session"] = session, ["track"] = track, ["seq"] = seq,
                ["t"] = t, ["sr"] = rate, ["format"] = "s16le", ["pcm"] = s16le,
            };
            if (token != null) msg["token"] = token;
            return MsgPack.Encode(msg);
        }

        public static byte[] End(string session, string token)
        {
            var msg = new Dictionary<string, object> { ["v"] = Version, ["type"] = "end", ["session"] = session };
            if (token != null) msg["token"] = token;
            return MsgPack.Encode(msg);
        }

        /// <summary>A control request (describe, open, set, close, stats) or subscribe / unsubscribe, with an id
        /// its reply will carry.</summary>
        public static byte[] Request(string type, long id, IDictionary<string, object> fields = null)
        {
            var msg = new Dictionary<string, object> { ["v"] = Version, ["type"] = type, ["id"] = id };
            if (fields != null) foreach (var pair in fields) msg[pair.Key] = pair.Value;
            return MsgPack.Encode(msg);
        }

        /// <summary>One frame from the door: a reply (Topic null) or a published message.</summary>
        public static Incoming Parse(byte[] frame, int length)
        {
            int offset = 0;
            object first;
            try { first = MsgPack.Read(frame, ref offset, length, 0); }
            catch (MsgPackException e) { throw new ProtocolException("unreadable frame: " + e.Message); }
            var reply = first as Dictionary<string, object>;
            if (reply != null)
            {
                if (offset != length) throw new ProtocolException("bytes after a reply");
                return new Incoming(null, null, null, reply);
            }
            var topic = first as string;
            int slash = topic == null ? -1 : topic.IndexOf('/');
            if (slash < 1) throw new ProtocolException("a frame that is neither a reply nor topic + body");
            Dictionary<string, object> body;
            try
            {
                body = MsgPack.Read(frame, ref offset, length, 0) as Dictionary<string, object>;
            }
            catch (MsgPackException e) { throw new ProtocolException("unreadable body: " + e.Message); }
            if (body == null || offset != length) throw new ProtocolException("a published body that is not one map");
            return new Incoming(topic, topic.Substring(0, slash), topic.Substring(slash + 1), body);
        }

        // --- typed access, strict: a missing or mistyped field is an error, not a zero ------------------------------

        public static long Int(IDictionary<string, object> m, string key)
        {
            object v;
            if (m.TryGetValue(key, out v) && v is long) return (long)v;
            throw new ProtocolException("field " + key + " missing or not an integer");
        }

        public static double Number(IDictionary<string, object> m, string key)
        {
            object v;
            if (m.TryGetValue(key, out v))
            {
                if (v is double) return (double)v;
                if (v is long) return (long)v;
            }
            throw new ProtocolException("field " + key + " missing or not a number");
        }

        public static string Str(IDictionary<string, object> m, string key)
        {
            object v;
            if (m.TryGetValue(key, out v) && v is string) return (string)v;
            throw new ProtocolException("field " + key + " missing or not a string");
        }

        public static float[] Floats(IDictionary<string, object> m, string key, int count)
        {
            object v;
            var list = m.TryGetValue(key, out v) ? v as List<object> : null;
            if (list == null || list.Count != count)
                throw new ProtocolException("field " + key + " missing or not " + count + " numbers");
            var result = new float[count];
            for (int i = 0; i < count; i++)
            {
                if (list[i] is double) result[i] = (float)(double)list[i];
                else if (list[i] is long) result[i] = (long)list[i];
                else throw new ProtocolException("field " + key + " holds a non-number");
            }
            return result;
        }
    }

    public sealed class Incoming
    {
        public readonly string Topic, Session, Kind;  // null for a reply
        public readonly Dictionary<string, object> Body;
        public bool IsReply => Topic == null;

        public Incoming(string topic, string session, string kind, Dictionary<string, object> body)
        {
            Topic = topic; Session = session; Kind = kind; Body = body;
        }
    }

    /// <summary>One motion frame (the `<session>/motion` body).</summary>
    public sealed class MotionFrame
    {
        public long Seq;
        public double T;  // audio time, seconds
        public string State;  // speaking, listening or idle
        public float[] Blendshapes;  // 52 ARKit weights in Apple's order
        public float[] HeadRotation;  // pitch, yaw, roll (radians)
        public float[] HeadTranslation;  // metres
        public float[] Gaze;  // left yaw, left pitch, right yaw, right pitch (radians)
        public double Published, AudioArrived;  // the worker's wall clock (Unix seconds)
        public double Received;  // this client's clock when it arrived (seconds, Stopwatch-based)
        public Dictionary<string, object> Body;  // as received (doubles, before the float conversion)

        public static MotionFrame FromBody(Dictionary<string, object> body, double received)
        {
            return new MotionFrame
            {
                Seq = Protocol.Int(body, "seq"), T = Protocol.Number(body, "t"), State = Protocol.Str(body, "state"),
                Blendshapes = Protocol.Floats(body, "blendshapes", Protocol.Blendshapes),
                HeadRotation = Protocol.Floats(body, "head_rotation", 3),
                HeadTranslation = Protocol.Floats(body, "head_translation", 3),
                Gaze = Protocol.Floats(body, "gaze", 4),
                Published = Protocol.Number(body, "published"), AudioArrived = Protocol.Number(body, "audio_arrived"),
                Received = received, Body = body,
            };
        }

        /// <summary>The frame between a and b, w of the way (0..1) from a to b; the state is the nearer one's.</summary>
        public static MotionFrame Lerp(MotionFrame a, MotionFrame b, double w)
        {
            float f = (float)Math.Max(0, Math.Min(1, w));
            return new MotionFrame
            {
                Seq = (f < 0.5f) ? a.Seq : b.Seq, T = a.T + (b.T - a.T) * f, State = (f < 0.5f) ? a.State : b.State,
                Blendshapes = Mix(a.Blendshapes, b.Blendshapes, f), HeadRotation = Mix(a.HeadRotation, b.HeadRotation, f),
                HeadTranslation = Mix(a.HeadTranslation, b.HeadTranslation, f), Gaze = Mix(a.Gaze, b.Gaze, f),
                Published = b.Published, AudioArrived = b.AudioArrived, Received = b.Received,
            };
        }

        static float[] Mix(float[] x, float[] y, float f)
        {
            var r = new float[x.Length];
            for (int i = 0; i < r.Length; i++) r[i] = x[i] + (y[i] - x[i]) * f;
            return r;
        }
    }

    /// <summary>One rendered portrait frame (the `<session>/frame` body, serve --portrait).</summary>
    public sealed class RenderedFrame
    {
        public long Seq;
        public string State, Format;  // format: jpeg or rgb24 (rows top to bottom, 3 bytes a pixel)
        public int Width, Height;
        public byte[] Data;

        public static RenderedFrame FromBody(Dictionary<string, object> body)
        {
            var frame = new RenderedFrame
            {
                Seq = Protocol.Int(body, "seq"), State = Protocol.Str(body, "state"), Format = Protocol.Str(body, "format"),
                Width = (int)Protocol.Int(body, "width"), Height = (int)Protocol.Int(body, "height"),
                Data = body.ContainsKey("data") ? body["data"] as byte[] : null,
            };
            if (frame.Data == null) throw new ProtocolException("frame without data bytes");
            if (frame.Width <= 0 || frame.Height <= 0) throw new ProtocolException("frame whose width or height is not positive");
            if (frame.Format == "rgb24" && (long)frame.Width * frame.Height * 3 != frame.Data.Length)
                throw new ProtocolException("rgb24 frame whose size is not width x height x 3");
            return frame;
        }
    }
}
