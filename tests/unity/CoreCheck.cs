// Drives the Unity package's engine-independent core (engine_plugins/unity/com.backchannel.link/Runtime/Core)
// against a live worker, for tests/test_unity.py. Modes:
//   selftest                                   msgpack strictness and the session buffer's interpolation
//   stream URL OUT N SELF.wav OTHER.wav         N sessions on one connection, audio as fast as the worker takes it
//   reconnect URL OUT NAME SELF.wav OTHER.wav   one session in real time, through a worker restart
//   rigmap RIG WEIGHTS.txt                      each line's 52 ARKit weights through BlendshapeMap.Named(RIG)
//   endreopen URL NAME                          open, end, dispose; a new client opens the same name
//   idlereconnect URL                           connects, waits for a second connection (nothing queued while
//                                               away), then one request: it must go out on the new connection
//   opener URL NAME                             held requests survive the held-audio limit; SessionOpener waits
//                                               for a worker (started after this), takes up its own session, and
//                                               refuses one under another token
// OUT gets one JSON line per motion frame received: session, seq, t, state, and the body's numbers as sent.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using Backchannel.Link;

static class CoreCheck
{
    static int Main(string[] args)
    {
        try
        {
            switch (args[0])
            {
                case "selftest": return SelfTest();
                case "stream": return Stream(args[1], args[2], int.Parse(args[3]), args[4], args[5], false);
                case "reconnect": return Stream(args[1], args[2], 1, args[4], args[5], true, args[3]);
                case "rigmap": return RigMap(args[1], args[2]);
                case "endreopen": return EndReopen(args[1], args[2]);
                case "idlereconnect": return IdleReconnect(args[1]);
                case "opener": return Opener(args[1], args[2]);
            }
            Console.Error.WriteLine("unknown mode " + args[0]);
            return 2;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine(e);
            return 1;
        }
    }

    static int SelfTest()
    {
        var hostile = new Dictionary<string, byte[]>
        {
            { "truncated", new byte[] { 0x92, 0x01 } },
            { "array claiming 2^32-1 items", new byte[] { 0xdd, 0xff, 0xff, 0xff, 0xff } },
            { "map claiming 65535 entries", new byte[] { 0xde, 0xff, 0xff, 0x01 } },
            { "bin longer than the data", new byte[] { 0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00 } },
            { "invalid UTF-8", new byte[] { 0xa2, 0xc3, 0x28 } },
            { "trailing bytes", new byte[] { 0x01, 0x02 } },
            { "ext type", new byte[] { 0xd4, 0x01, 0x00 } },
            { "integer key", new byte[] { 0x81, 0x01, 0x02 } },
            { "uint64 beyond long", new byte[] { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
        };
        var deep = new byte[100];
        for (int i = 0; i < deep.Length; i++) deep[i] = 0x91;
        hostile["nested 100 deep"] = deep;
        foreach (var pair in hostile)
        {
            try { MsgPack.Decode(pair.Value); Console.WriteLine("ACCEPTED " + pair.Key); return 1; }
            catch (MsgPackException) { Console.WriteLine("refused " + pair.Key); }
        }
        // what the worker sends round-trips
        var map = new Dictionary<string, object> { { "v", 1 }, { "x", 0.1 }, { "s", "npc-7" }, { "b", new byte[300] },
                                                    { "l", new List<object> { -1, 70000L, 1e300, true, null } } };
        var back = (Dictionary<string, object>)MsgPack.Decode(MsgPack.Encode(map));
        if ((long)back["v"] != 1 || (double)back["x"] != 0.1 || ((byte[])back["b"]).Length != 300 ||
            (long)((List<object>)back["l"])[1] != 70000) { Console.WriteLine("round trip differs"); return 1; }
        // interpolation: halfway between two frames is their mean; past the newest it holds
        var buffer = new SessionBuffer();
        for (int k = 0; k < 3; k++)
            buffer.Add(new MotionFrame { Seq = k, T = k / 30.0, State = k < 2 ? "speaking" : "listening",
                Blendshapes = Enumerable.Repeat((float)k, 52).ToArray(), HeadRotation = new float[] { k, 0, 0 },
                HeadTranslation = new float[3], Gaze = new float[4], Received = k / 30.0 });
        buffer.Add(new MotionFrame { Seq = 1, T = 1 / 30.0, State = "idle", Blendshapes = new float[52],
            HeadRotation = new float[3], HeadTranslation = new float[3], Gaze = new float[4] });  // a repeat: kept out
        var mid = buffer.At(1.5 / 30);
        var held = buffer.At(10);
        if (Math.Abs(mid.Blendshapes[17] - 1.5f) > 1e-6 || Math.Abs(mid.HeadRotation[0] - 1.5f) > 1e-6 || held.Seq != 2)
        { Console.WriteLine("interpolation wrong: " + mid.Blendshapes[17]); return 1; }
        var chunker = new AudioChunker("npc", "self", 48000, 2, 20);
        var messages = chunker.Push(new float[48000 * 2 / 50 * 3 + 2], 0, 48000 * 2 / 50 * 3 + 2);
        var first = (Dictionary<string, object>)MsgPack.Decode(messages[1]);
        if (messages.Count != 3 || (long)first["seq"] != 1 || (double)first["t"] != 0.02 || ((byte[])first["pcm"]).Length != 1920)
        { Console.WriteLine("chunker wrong"); return 1; }
        foreach (var size in new[] { new long[] { -2, -2 }, new long[] { 0, 5 }, new long[] { -1, 3 } })
        {
            var body = new Dictionary<string, object> { { "seq", 0L }, { "state", "idle" }, { "format", size[1] == 3 ? "jpeg" : "rgb24" },
                                                        { "width", size[0] }, { "height", size[1] }, { "data", new byte[12] } };
            try { RenderedFrame.FromBody(body); Console.WriteLine("ACCEPTED a " + size[0] + "x" + size[1] + " frame"); return 1; }
            catch (ProtocolException) { }
        }
        // the audio ring: wraps around, drops a block that does not fit whole, hands back what went in
        var ring = new AudioRing(10);
        var got = new List<float>();
        var scratch = new float[10];
        float next = 0;
        for (int round = 0; round < 7; round++)
        {
            var block = Enumerable.Range(0, 4).Select(i => next + i).ToArray();
            if (ring.Write(block, 0, 4)) next += 4;
            if (round % 3 == 2) { int n = ring.Read(scratch, 0, scratch.Length); got.AddRange(scratch.Take(n)); }
        }
        got.AddRange(scratch.Take(ring.Read(scratch, 0, scratch.Length)));
        if (!got.SequenceEqual(Enumerable.Range(0, (int)next).Select(i => (float)i)) || ring.Dropped != 8)
        { Console.WriteLine("ring wrong: " + string.Join(",", got) + " dropped " + ring.Dropped); return 1; }
        Console.WriteLine("selftest ok");
        return 0;
    }

    static int EndReopen(string url, string name)
    {
        var first = new BackchannelClient(url);
        first.Start();
        var session = first.Open(name).Result;
        first.End(session);
        first.Dispose();  // what BackchannelAvatar.OnDestroy, then BackchannelLink.OnDestroy, do: the end must go out
        using (var second = new BackchannelClient(url))
        {
            second.Start();
            var again = new SessionOpener(second, name).Open(CancellationToken.None).Result;
            Console.WriteLine("reopened " + again.Name);
        }
        return 0;
    }

    static int IdleReconnect(string url)
    {
        using (var client = new BackchannelClient(url))
        {
            var connected = new SemaphoreSlim(0);
            client.Connected += n => { Console.WriteLine("connected " + n); Console.Out.Flush(); connected.Release(); };
            client.Start();
            if (!connected.Wait(20000) || !connected.Wait(60000)) { Console.WriteLine("no reconnection"); return 1; }
            // the only message queued after the reconnection: a send loop left from the first connection must not
            // take its wake-up
            var reply = client.Request("describe", null, 5000).Result;
            Console.WriteLine("described " + reply["protocol"]);
            return 0;
        }
    }

    static int Opener(string url, string name)
    {
        using (var client = new BackchannelClient(url) { MaxHeldMessages = 5 })
        {
            // while no worker is connected: a request, then more audio than is held; the request survives
            var held = client.Request("describe", null, 60000);
            for (int k = 0; k < 20; k++) client.Send(new byte[] { 0xc1 });
            if (client.Queued != 5 || client.DroppedWhileAway != 16) { Console.WriteLine("held " + client.Queued + " dropped " + client.DroppedWhileAway); return 1; }
            // a try that times out with no worker is withdrawn, not left to open the session later
            try { client.Open(name + "-orphan", null, 100).Wait(); Console.WriteLine("opened without a worker?"); return 1; }
            catch (AggregateException e) when (e.GetBaseException() is TimeoutException) { }
            if (client.Queued != 4) { Console.WriteLine("the timed-out open is still queued"); return 1; }  // (one more audio went for it)
            var opener = new SessionOpener(client, name);
            opener.Retrying += why => { };
            Console.WriteLine("waiting"); Console.Out.Flush();
            client.Start();
            var session = opener.Open(CancellationToken.None).Result;
            if ((long)held.Result["protocol"] != 1) return 1;
            Console.WriteLine("opened " + session.Name + " after " + opener.Tries + " tries");
            // our own restart, the first open's reply lost: the same token takes it up
            using (var restarted = new BackchannelClient(url))
            {
                restarted.Start();
                var again = new SessionOpener(restarted, name, new SessionOptions { Token = session.Token }).Open(CancellationToken.None).Result;
                Console.WriteLine("adopted " + again.Name + " " + (again.Token == session.Token));
                try
                {
                    new SessionOpener(restarted, name).Open(CancellationToken.None).Wait();
                    Console.WriteLine("took a session under another token"); return 1;
                }
                catch (AggregateException e) when (e.GetBaseException() is ProtocolException)
                {
                    Console.WriteLine("refused: " + ((ProtocolException)e.GetBaseException()).Kind);
                }
                restarted.End(again);
                var open = (List<object>)restarted.Call("stats").Result["sessions"];
                Console.WriteLine("orphans " + open.Count(k => (string)k == name + "-orphan"));
            }
            return 0;
        }
    }

    static int RigMap(string rig, string path)
    {
        var map = BlendshapeMap.Named(rig);
        Console.WriteLine(string.Join(" ", map.Targets));
        foreach (var line in File.ReadAllLines(path))
        {
            var weights = line.Split(' ').Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray();
            Console.WriteLine(string.Join(" ", map.Apply(weights).Select(w => w.ToString("R", CultureInfo.InvariantCulture))));
        }
        return 0;
    }

    static float[] ReadWav(string path, out int rate, out int channels)
    {
        var data = File.ReadAllBytes(path);
        rate = channels = 0;
        int pos = 12;
        while (pos + 8 <= data.Length)
        {
            string id = Encoding.ASCII.GetString(data, pos, 4);
            int size = BitConverter.ToInt32(data, pos + 4);
            if (id == "fmt ") { channels = BitConverter.ToInt16(data, pos + 10); rate = BitConverter.ToInt32(data, pos + 12); }
            if (id == "data")
            {
                var samples = new float[size / 2];
                for (int i = 0; i < samples.Length; i++) samples[i] = BitConverter.ToInt16(data, pos + 8 + 2 * i) / 32768f;
                return samples;
            }
            pos += 8 + size + (size & 1);
        }
        throw new InvalidDataException(path + ": no data chunk (16-bit PCM expected)");
    }

    static int Stream(string url, string outPath, int count, string selfPath, string otherPath, bool realtime, string name = null)
    {
        int selfRate, selfChannels, otherRate, otherChannels;
        var own = ReadWav(selfPath, out selfRate, out selfChannels);
        var other = ReadWav(otherPath, out otherRate, out otherChannels);
        var names = Enumerable.Range(0, count).Select(k => name ?? ("cs-" + k)).ToArray();
        var frames = new ConcurrentQueue<string>();
        var closed = new ConcurrentDictionary<string, bool>();
        using (var client = new BackchannelClient(url))
        {
            var connected = new SemaphoreSlim(0);
            client.Connected += n => { Console.WriteLine("connected " + n); Console.Out.Flush(); connected.Release(); };
            client.Error += text => Console.Error.WriteLine("client: " + text);
            client.Refused += reply => Console.Error.WriteLine("refused: " + reply["error"] + " " + reply["message"]);
            client.Motion += (session, frame) => frames.Enqueue(Json(session.Name, frame.Body));
            bool ended = false;  // a worker stopped mid-stream closes the session too: only the final close counts
            client.Stats += (session, body) => { if (ended && body.ContainsKey("closed")) closed[session] = true; };
            client.Start();
            if (!connected.Wait(10000)) throw new TimeoutException("no connection");
            client.Subscribe(names, new[] { "motion", "stats" }).Wait();
            var sessions = names.Select((n, k) => client.Open(n, new SessionOptions { Seed = k }).Result).ToArray();
            var tracks = sessions.Select(s => new[] { s.Track("self", selfRate, selfChannels), s.Track("other", otherRate, otherChannels) }).ToArray();
            var clock = Stopwatch.StartNew();
            int block = selfRate / 50;  // 20 ms of the self track at a time; the other track follows its time
            for (int start = 0; start < own.Length / selfChannels; start += block)
            {
                int n = Math.Min(block, own.Length / selfChannels - start);
                int otherStart = (int)((long)start * otherRate / selfRate), otherEnd = (int)((long)(start + n) * otherRate / selfRate);
                otherEnd = Math.Min(otherEnd, other.Length / otherChannels);
                foreach (var pair in tracks)
                {
                    client.Send(pair[0].Push(own, start * selfChannels, n * selfChannels));
                    if (otherEnd > otherStart) client.Send(pair[1].Push(other, otherStart * otherChannels, (otherEnd - otherStart) * otherChannels));
                }
                if (realtime)
                {
                    double ahead = (double)(start + n) / selfRate - clock.Elapsed.TotalSeconds;
                    if (ahead > 0) Thread.Sleep(TimeSpan.FromSeconds(ahead));
                }
            }
            foreach (var pair in tracks)
                foreach (var chunker in pair)
                {
                    var last = chunker.Flush();
                    if (last != null) client.Send(last);
                }
            ended = true;
            foreach (var s in sessions) client.End(s);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (names.Distinct().Any(n => !closed.ContainsKey(n)) && DateTime.UtcNow < deadline) Thread.Sleep(20);
            File.WriteAllLines(outPath, frames.ToArray());
            Console.WriteLine("frames " + frames.Count + ", connections " + client.Connections + ", dropped while away " + client.DroppedWhileAway + ", unreadable " + client.BadFrames);
            return names.Distinct().All(n => closed.ContainsKey(n)) ? 0 : 3;
        }
    }

    static string Json(string session, Dictionary<string, object> body)
    {
        var sb = new StringBuilder("{\"session\":\"" + session + "\"");
        foreach (var key in new[] { "seq", "t", "state", "blendshapes", "head_rotation", "head_translation", "gaze", "published" })
        {
            sb.Append(",\"" + key + "\":");
            Value(sb, body[key]);
        }
        return sb.Append("}").ToString();
    }

    static void Value(StringBuilder sb, object v)
    {
        if (v is string) sb.Append("\"" + v + "\"");
        else if (v is long) sb.Append(((long)v).ToString(CultureInfo.InvariantCulture));
        else if (v is double) sb.Append(((double)v).ToString("R", CultureInfo.InvariantCulture));
        else if (v is List<object>)
        {
            sb.Append("[");
            var list = (List<object>)v;
            for (int i = 0; i < list.Count; i++) { if (i > 0) sb.Append(","); Value(sb, list[i]); }
            sb.Append("]");
        }
        else throw new InvalidDataException("unexpected " + v);
    }
}
