// One WebSocket connection to a Backchannel worker (`backchannel serve --ws`), for any number of sessions: control
// requests with their replies, audio out, frames in, and reconnection. System.Net.WebSockets.ClientWebSocket is
// .NET's own client: no native plugin to build per platform (a libzmq binding would need one for every target).
// Events are raised on the receiving thread; an engine hands them to its main thread (the Unity components do).
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;

namespace Backchannel.Link
{
    public sealed class SessionOptions
    {
        public string Generator;  // one of describe's `generators`; null: the worker's default
        public long Seed = -1;  // -1: the worker's default
        public Dictionary<string, object> Style;  // e.g. {"smile": 0.3}
        public string Token;  // your own owner token (16-128 of A-Z a-z 0-9 _ -); null: the worker makes one
    }

    public sealed class BackchannelSession
    {
        public readonly string Name;
        public readonly SessionOptions Options;
        public readonly SessionBuffer Buffer = new SessionBuffer();
        public string Token { get; internal set; }
        public string State { get; internal set; }  // the newest frame's: speaking, listening or idle
        public long Frames;  // motion frames received

        internal BackchannelSession(string name, SessionOptions options) { Name = name; Options = options; }

        /// <summary>A chunker for one of this session's tracks, stamping its messages with the session's token.</summary>
        public AudioChunker Track(string track, int rate, int channels = 1, double chunkMs = 20)
        {
            return new AudioChunker(Name, track, rate, channels, chunkMs) { Token = Token };
        }
    }

    public sealed class BackchannelClient : IDisposable
    {
        public const int MaxFrameBytes = 16 << 20;  // a rendered rgb24 1024 x 1024 frame is 3 MiB
        readonly Uri url;
        // waiting to be sent, oldest first; `gate` guards it and `inFlight` (the one being written: it goes back to the
        // front if the write fails). `wake` is signalled on enqueue; the send loop empties the list before waiting.
        readonly LinkedList<Outgoing> outgoing = new LinkedList<Outgoing>();
        readonly object gate = new object();
        Outgoing inFlight;
        readonly SemaphoreSlim wake = new SemaphoreSlim(0);
        readonly ConcurrentDictionary<long, bool> quiet = new ConcurrentDictionary<long, bool>();
        readonly ConcurrentDictionary<long, TaskCompletionSource<Dictionary<string, object>>> waiting =
            new ConcurrentDictionary<long, TaskCompletionSource<Dictionary<string, object>>>();
        readonly ConcurrentDictionary<string, BackchannelSession> sessions = new ConcurrentDictionary<string, BackchannelSession>();
        readonly List<KeyValuePair<string[], string[]>> subscriptions = new List<KeyValuePair<string[], string[]>>();
        readonly CancellationTokenSource stopping = new CancellationTokenSource();
        readonly Stopwatch clock = Stopwatch.StartNew();
        long ids;
        volatile ClientWebSocket socket;
        volatile bool disposing;
        Task loop;

        public int MaxHeldMessages = 3000;  // kept while no worker is connected (30 s of one session's two tracks)
        public long DroppedWhileAway;  // held audio dropped beyond MaxHeldMessages (requests and end never are)
        public int FlushTimeoutMs = 1000;  // Dispose waits this long for queued messages (a session's end) to go out
        public long BadFrames;  // frames from the worker this client could not read (logged through Error)
        public int Connections;  // how many times a connection opened
        public bool IsConnected { get { var s = socket; return s != null && s.State == WebSocketState.Open; } }

        public event Action<BackchannelSession, MotionFrame> Motion;
        public event Action<BackchannelSession, RenderedFrame> Frame;
        public event Action<string, Dictionary<string, object>> Stats;  // session (or _worker), body
        public event Action<Dictionary<string, object>> Refused;  // an error reply no request waits for (refused audio)
        public event Action<int> Connected;  // the connection count, after subscriptions and sessions were restored
        public event Action<string> Error;

        /// <summary>`url`: the worker's door, ws://HOST:PORT/; `doorToken`: serve --ws-token's, if it has one.</summary>
        public BackchannelClient(string url, string doorToken = null)
        {
            this.url = new Uri(doorToken == null ? url : url + (url.Contains("?") ? "&" : "?") + "token=" + Uri.EscapeDataString(doorToken));
        }

        /// <summary>Seconds on this client's clock (what MotionFrame.Received and SessionBuffer.Sample use).</summary>
        public double Now { get { return clock.Elapsed.TotalSeconds; } }

        public void Start()
        {
            if (loop == null) loop = Task.Run(() => Run(stopping.Token));
        }

        public BackchannelSession Session(string name)
        {
            BackchannelSession s;
            return sessions.TryGetValue(name, out s) ? s : null;
        }

        // --- requests ---------------------------------------------------------------------------------------------

        public async Task<Dictionary<string, object>> Request(string type, Dictionary<string, object> fields = null, int timeoutMs = 5000)
        {
            long id = Interlocked.Increment(ref ids);
            var reply = new TaskCompletionSource<Dictionary<string, object>>(TaskCreationOptions.RunContinuationsAsynchronously);
            waiting[id] = reply;
            var node = Enqueue(Protocol.Request(type, id, fields), true);
            var done = await Task.WhenAny(reply.Task, Task.Delay(timeoutMs)).ConfigureAwait(false);
            TaskCompletionSource<Dictionary<string, object>> gone;
            waiting.TryRemove(id, out gone);
            if (done != reply.Task)
            {
                // never sent (no worker): withdraw it, so no request its caller gave up on (an open) goes out later
                bool withdrawn = false;
                lock (gate) if (node.List != null) { outgoing.Remove(node); withdrawn = true; }
                throw new TimeoutException(type + ": no reply within " + timeoutMs + " ms" + (withdrawn ? " (not sent: no worker connected)" : ""));
            }
            return reply.Task.Result;
        }

        public async Task<Dictionary<string, object>> Call(string type, Dictionary<string, object> fields = null, int timeoutMs = 5000)
        {
            var reply = await Request(type, fields, timeoutMs).ConfigureAwait(false);
            if (!(reply.ContainsKey("ok") && reply["ok"] is bool && (bool)reply["ok"]))
            {
                object kind;
                reply.TryGetValue("error", out kind);
                throw new ProtocolException(type + ": " + Describe(reply), kind as string);
            }
            return reply;
        }

        /// <summary>Open a session (its token is kept, and sent again after a reconnection). One try: SessionOpener
        /// retries while the worker is away.</summary>
        public async Task<BackchannelSession> Open(string name, SessionOptions options = null, int timeoutMs = 5000)
        {
            var session = new BackchannelSession(name, options ?? new SessionOptions());
            var reply = await Call("open", OpenFields(session), timeoutMs).ConfigureAwait(false);
            session.Token = Protocol.Str(reply, "token");
            sessions[name] = session;
            return session;
        }

        /// <summary>Take up a session the worker already has under `token` (an open whose reply was lost, or one this
        /// client made before a reconnection): a `set` with no changes succeeds only for the token's holder.</summary>
        public async Task<BackchannelSession> Adopt(string name, SessionOptions options, string token, int timeoutMs = 5000)
        {
            await Call("set", new Dictionary<string, object> { { "session", name }, { "token", token } }, timeoutMs).ConfigureAwait(false);
            var session = new BackchannelSession(name, options) { Token = token };
            sessions[name] = session;
            return session;
        }

        /// <summary>Receive these topics (motion, latent, frame, stats) of these sessions ("*": all); kept across
        /// reconnections.</summary>
        public Task<Dictionary<string, object>> Subscribe(string[] names, string[] topics)
        {
            lock (subscriptions) subscriptions.Add(new KeyValuePair<string[], string[]>(names, topics));
            return Call("subscribe", SubscribeFields(names, topics));
        }

        /// <summary>Send the session's end (its last frames and closing stats follow) and forget it.</summary>
        public void End(BackchannelSession session)
        {
            Enqueue(Protocol.End(session.Name, session.Token), true);
            BackchannelSession gone;
            sessions.TryRemove(session.Name, out gone);
        }

        /// <summary>Queue an audio message (from AudioChunker). While no worker is connected it is held, the oldest
        /// audio dropped beyond MaxHeldMessages, and sent in order once one is.</summary>
        public void Send(byte[] message) { Enqueue(message, false); }

        public void Send(IEnumerable<byte[]> messages)
        {
            foreach (var m in messages) Enqueue(m, false);
        }

        /// <summary>Messages waiting to be sent (held while no worker is connected).</summary>
        public int Queued { get { lock (gate) return outgoing.Count + (inFlight != null ? 1 : 0); } }

        /// <summary>Wait (up to `timeoutMs`) until every queued message was handed to the socket; false if some were
        /// not (no worker connected, or it is that far behind).</summary>
        public bool Flush(int timeoutMs)
        {
            var deadline = clock.ElapsedMilliseconds + timeoutMs;
            while (Queued > 0)
            {
                if (!IsConnected || clock.ElapsedMilliseconds >= deadline) return false;
                Thread.Sleep(2);
            }
            return true;
        }

        LinkedListNode<Outgoing> Enqueue(byte[] message, bool control)
        {
            LinkedListNode<Outgoing> node;
            lock (gate)
            {
                node = outgoing.AddLast(new Outgoing(message, control));
                if (outgoing.Count > MaxHeldMessages && !IsConnected)
                    // the oldest audio goes; requests and ends are few and each one matters
                    for (var old = outgoing.First; old != null; old = old.Next)
                        if (!old.Value.Control) { outgoing.Remove(old); DroppedWhileAway++; break; }
            }
            if (wake.CurrentCount == 0) wake.Release();  // one pending signal is enough: the loop drains all
            return node;
        }

        sealed class Outgoing
        {
            public readonly byte[] Message;
            public readonly bool Control;
            public Outgoing(byte[] message, bool control) { Message = message; Control = control; }
        }

        static Dictionary<string, object> OpenFields(BackchannelSession s)
        {
            var f = new Dictionary<string, object> { { "session", s.Name } };
            var token = s.Token ?? s.Options.Token;
            if (token != null) f["token"] = token;
            if (s.Options.Generator != null) f["generator"] = s.Options.Generator;
            if (s.Options.Seed >= 0) f["seed"] = s.Options.Seed;
            if (s.Options.Style != null) f["style"] = s.Options.Style;
            return f;
        }

        static Dictionary<string, object> SubscribeFields(string[] names, string[] topics)
        {
            var f = new Dictionary<string, object>();
            f["sessions"] = names.Length == 1 && names[0] == "*" ? (object)"*" : new List<object>(names);
            f["topics"] = new List<object>(topics);
            return f;
        }

        static string Describe(Dictionary<string, object> reply)
        {
            object error, message;
            reply.TryGetValue("error", out error);
            reply.TryGetValue("message", out message);
            return error + ": " + message;
        }

        // --- the connection ---------------------------------------------------------------------------------------

        async Task Run(CancellationToken stop)
        {
            int backoffMs = 100;
            while (!stop.IsCancellationRequested)
            {
                var ws = new ClientWebSocket();
                // ends this connection's send loop with it: one left waiting on `wake` would take the signal meant
                // for the next connection's, and a last message (a session's end) would sit unsent
                var connection = CancellationTokenSource.CreateLinkedTokenSource(stop);
                try
                {
                    await ws.ConnectAsync(url, stop).ConfigureAwait(false);
                    backoffMs = 100;
                    socket = ws;
                    var receiving = Receive(ws, stop);
                    await Restore(ws, stop).ConfigureAwait(false);
                    Connections++;
                    var handler = Connected;
                    if (handler != null) handler(Connections);
                    await Task.WhenAny(receiving, Pump(ws, stop, connection.Token)).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    if (!stop.IsCancellationRequested) Report("connection: " + e.GetBaseException().Message);
                }
                finally
                {
                    socket = null;
                    connection.Cancel();
                    connection.Dispose();
                    ws.Dispose();
                    ForgetQuiet();
                }
                if (stop.IsCancellationRequested || disposing) break;
                try { await Task.Delay(backoffMs, stop).ConfigureAwait(false); } catch (TaskCanceledException) { break; }
                backoffMs = Math.Min(2000, backoffMs * 2);
            }
        }

        /// <summary>After (re)connecting and before any held audio: the subscriptions and every session's open
        /// (same token and settings: a restarted worker takes the session up where its audio resumes; one that
        /// kept it answers session_exists).</summary>
        async Task Restore(ClientWebSocket ws, CancellationToken stop)
        {
            List<KeyValuePair<string[], string[]>> subs;
            lock (subscriptions) subs = new List<KeyValuePair<string[], string[]>>(subscriptions);
            foreach (var sub in subs)
                await Write(ws, Protocol.Request("subscribe", Quiet(), SubscribeFields(sub.Key, sub.Value)), stop).ConfigureAwait(false);
            if (Connections > 0)
                foreach (var session in sessions.Values)
                    await Write(ws, Protocol.Request("open", Quiet(), OpenFields(session)), stop).ConfigureAwait(false);
        }

        /// <summary>An id whose reply nobody awaits (session_exists after a reconnection is expected, not refused).</summary>
        long Quiet()
        {
            long id = Interlocked.Increment(ref ids);
            waiting[id] = new TaskCompletionSource<Dictionary<string, object>>();
            quiet[id] = true;
            return id;
        }

        /// <summary>A lost connection takes the quiet requests' replies with it: drop their entries (failed, so
        /// nothing waits on them) rather than keep one per reconnection forever.</summary>
        void ForgetQuiet()
        {
            foreach (var id in quiet.Keys)
            {
                bool unused;
                TaskCompletionSource<Dictionary<string, object>> entry;
                quiet.TryRemove(id, out unused);
                if (waiting.TryRemove(id, out entry))
                    entry.TrySetCanceled();  // nobody awaits it: cancelled, not an unobserved exception
            }
        }

        async Task Pump(ClientWebSocket ws, CancellationToken stop, CancellationToken gone)
        {
            while (!stop.IsCancellationRequested && ws.State == WebSocketState.Open)
            {
                Outgoing next;
                lock (gate)
                {
                    next = outgoing.First != null ? outgoing.First.Value : null;
                    if (next != null) { outgoing.RemoveFirst(); inFlight = next; }
                }
                if (next == null) { await wake.WaitAsync(gone).ConfigureAwait(false); continue; }
                try
                {
                    await Write(ws, next.Message, stop).ConfigureAwait(false);
                }
                catch
                {
                    lock (gate) { outgoing.AddFirst(next); inFlight = null; }  // first in line for the next connection
                    throw;
                }
                lock (gate) inFlight = null;
            }
        }

        static Task Write(ClientWebSocket ws, byte[] message, CancellationToken stop)
        {
            return ws.SendAsync(new ArraySegment<byte>(message), WebSocketMessageType.Binary, true, stop);
        }

        async Task Receive(ClientWebSocket ws, CancellationToken stop)
        {
            var buffer = new byte[1 << 16];
            while (!stop.IsCancellationRequested && ws.State == WebSocketState.Open)
            {
                int length = 0;
                WebSocketReceiveResult result;
                do
                {
                    if (length == buffer.Length)
                    {
                        if (buffer.Length >= MaxFrameBytes) throw new ProtocolException("a frame over " + MaxFrameBytes + " bytes");
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }
                    result = await ws.ReceiveAsync(new ArraySegment<byte>(buffer, length, buffer.Length - length), stop).ConfigureAwait(false);
                    if (result.MessageType == WebSocketMessageType.Close) return;
                    length += result.Count;
                } while (!result.EndOfMessage);
                if (result.MessageType != WebSocketMessageType.Binary) { BadFrames++; continue; }
                try
                {
                    Dispatch(Protocol.Parse(buffer, length));
                }
                catch (ProtocolException e)
                {
                    BadFrames++;
                    Report("a frame this client cannot read: " + e.Message);
                }
            }
        }

        void Dispatch(Incoming message)
        {
            if (message.IsReply)
            {
                object id;
                TaskCompletionSource<Dictionary<string, object>> reply;
                bool wasQuiet;
                if (message.Body.TryGetValue("id", out id) && id is long) quiet.TryRemove((long)id, out wasQuiet);
                if (id is long && waiting.TryRemove((long)id, out reply))
                    reply.TrySetResult(message.Body);
                else if (message.Body.ContainsKey("ok") && message.Body["ok"] is bool && !(bool)message.Body["ok"])
                {
                    var refused = Refused;
                    if (refused != null) refused(message.Body);
                }
                return;
            }
            BackchannelSession session;
            sessions.TryGetValue(message.Session, out session);
            if (message.Kind == "motion")
            {
                var frame = MotionFrame.FromBody(message.Body, Now);
                if (session != null)
                {
                    session.Buffer.Add(frame);
                    session.State = frame.State;
                    Interlocked.Increment(ref session.Frames);
                }
                var handler = Motion;
                if (handler != null) handler(session ?? new BackchannelSession(message.Session, null), frame);
            }
            else if (message.Kind == "frame")
            {
                var handler = Frame;
                if (handler != null) handler(session ?? new BackchannelSession(message.Session, null), RenderedFrame.FromBody(message.Body));
            }
            else if (message.Kind == "stats")
            {
                var handler = Stats;
                if (handler != null) handler(message.Session, message.Body);
            }
        }

        void Report(string text)
        {
            var handler = Error;
            if (handler != null) handler(text);
        }

        /// <summary>Send what is queued (a session's end: bounded by FlushTimeoutMs), then close. Every step is
        /// bounded: an engine disposes this on its main thread.</summary>
        public void Dispose()
        {
            Flush(FlushTimeoutMs);
            disposing = true;  // no reconnection from here on
            var ws = socket;
            try
            {
                // the polite close first: cancelling aborts the socket, so after it there is nothing left to close
                if (ws != null && ws.State == WebSocketState.Open)
                    ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None).Wait(1000);
            }
            catch (Exception) { }  // it went away meanwhile (thrown at once or from the task): nothing to close
            try
            {
                // on a pool thread: Cancel runs the token's callbacks (the socket's abort) and the continuations they
                // release inline, and those wait on the socket's own locks; on the disposing thread that could block
                // it for good
                Task.Run(() => stopping.Cancel()).Wait(1000);
                if (loop != null) loop.Wait(2000);
            }
            catch (AggregateException) { }
        }
    }
}
