// The connection to a Backchannel worker, one per scene: its client runs on background threads, and what it
// receives is handed to Unity's main thread here, each frame, before the avatars read it.
using System;
using System.Collections.Concurrent;
using UnityEngine;

namespace Backchannel.Link.Unity
{
    [AddComponentMenu("Backchannel/Backchannel Link")]
    [DisallowMultipleComponent]
    [DefaultExecutionOrder(-100)]
    public sealed class BackchannelLink : MonoBehaviour
    {
        [Tooltip("The worker's WebSocket door: backchannel serve --ws 127.0.0.1:8765")]
        public string url = "ws://127.0.0.1:8765/";
        [Tooltip("serve --ws-token's secret, if the worker has one")]
        public string doorToken = "";
        public bool logErrors = true;

        readonly ConcurrentQueue<Action> mainThread = new ConcurrentQueue<Action>();
        public BackchannelClient Client { get; private set; }
        public bool IsConnected { get { return Client != null && Client.IsConnected; } }

        void Awake()
        {
            Client = new BackchannelClient(url, string.IsNullOrEmpty(doorToken) ? null : doorToken);
            Client.Error += text => { if (logErrors) Post(() => Debug.LogWarning("Backchannel: " + text)); };
            Client.Refused += reply => { if (logErrors) Post(() => Debug.LogWarning("Backchannel refused: " + reply["error"] + ": " + reply["message"])); };
            Client.Start();
        }

        /// <summary>Run `action` on the main thread, at the start of the next Update.</summary>
        public void Post(Action action) { mainThread.Enqueue(action); }

        void Update()
        {
            Action action;
            while (mainThread.TryDequeue(out action)) action();
        }

        void OnDestroy()
        {
            if (Client != null) Client.Dispose();
        }

        public static BackchannelLink Find()
        {
            return FindObjectOfType<BackchannelLink>();
        }
    }
}
