// Opening a session that must come up however the connection is doing: an avatar's Start runs before the worker
// may be up, or while the client reconnects after a worker restart. Tries until it succeeds, backing off; a try made
// while no worker is connected is withdrawn, not left queued (no orphan open goes out later); and the token is the
// opener's own, so an open whose reply was lost (it answers session_exists on the next try) is taken up with a `set`
// that only the token's holder may make (PROTOCOL.md, "Sessions and ownership").
using System;
using System.Security.Cryptography;
using System.Threading;
using System.Threading.Tasks;

namespace Backchannel.Link
{
    public sealed class SessionOpener
    {
        readonly BackchannelClient client;
        readonly string name;
        readonly SessionOptions options;
        public int FirstDelayMs = 100, MaxDelayMs = 2000, TryTimeoutMs = 3000;
        public int Tries;  // opens sent so far
        public event Action<string> Retrying;  // why the last try failed

        public SessionOpener(BackchannelClient client, string name, SessionOptions options = null)
        {
            this.client = client;
            this.name = name;
            this.options = options ?? new SessionOptions();
            if (this.options.Token == null) this.options.Token = NewToken();
        }

        /// <summary>Resolves with the open session; fails only on what retrying cannot change (the name is someone
        /// else's, bad settings) or when `stop` is cancelled.</summary>
        public async Task<BackchannelSession> Open(CancellationToken stop)
        {
            int delay = FirstDelayMs;
            while (true)
            {
                stop.ThrowIfCancellationRequested();
                string why;
                if (!client.IsConnected) why = "no worker connected";
                else
                {
                    Tries++;
                    try
                    {
                        return await client.Open(name, options, TryTimeoutMs).ConfigureAwait(false);
                    }
                    catch (ProtocolException e) when (e.Kind == "session_exists")
                    {
                        // ours if the worker kept it under our token (an earlier try's reply was lost); set says so
                        return await client.Adopt(name, options, options.Token, TryTimeoutMs).ConfigureAwait(false);
                    }
                    catch (ProtocolException e) when (e.Kind != "too_many_sessions" && e.Kind != "internal_error")
                    {
                        throw;  // bad settings or name: trying again gets the same answer
                    }
                    catch (Exception e)  // a timeout, a connection lost mid-request, a full worker
                    {
                        why = e.Message;
                    }
                }
                var handler = Retrying;
                if (handler != null) handler(why);
                await Task.Delay(delay, stop).ConfigureAwait(false);
                delay = Math.Min(MaxDelayMs, delay * 2);
            }
        }

        static string NewToken()
        {
            var bytes = new byte[24];
            using (var random = RandomNumberGenerator.Create()) random.GetBytes(bytes);
            return Convert.ToBase64String(bytes).Replace('+', '-').Replace('/', '_');  // 32 of [A-Za-z0-9_-]
        }
    }
}
