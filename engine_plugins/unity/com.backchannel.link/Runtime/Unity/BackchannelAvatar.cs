// One avatar: opens its session, streams its voice (AudioSourceTap) and its partner's (MicrophoneCapture) to the
// worker, and each frame applies the session's motion, interpolated to the engine's frame rate, to blendshapes
// (through a name map), head and eye transforms, and a texture (rendered portrait frames); raises events when it
// starts or stops speaking and listening.
using System;
using System.Collections.Generic;
using System.Threading;
using UnityEngine;
using UnityEngine.Events;

namespace Backchannel.Link.Unity
{
    public enum RigNames { Arkit, Vrm0, Vrm1, Custom }

    [Serializable]
    public sealed class CustomShape
    {
        public string shape;  // the mesh's blendshape name
        public string arkit;  // the ARKit shape that drives it
        public float weight = 1;
    }

    [Serializable]
    public sealed class StateEvent : UnityEvent<string> { }

    [AddComponentMenu("Backchannel/Backchannel Avatar")]
    public sealed class BackchannelAvatar : MonoBehaviour
    {
        [Header("Session")]
        public BackchannelLink link;
        public string sessionName = "npc";
        [Tooltip("empty: the worker's default generator")]
        public string generator = "";
        public int seed = -1;
        [Range(-1, 1)] public float smile = 0;
        [Range(0, 3)] public float expressiveness = 1;

        [Header("Face")]
        public SkinnedMeshRenderer[] faces = new SkinnedMeshRenderer[0];
        public RigNames names = RigNames.Arkit;
        public List<CustomShape> customShapes = new List<CustomShape>();
        [Tooltip("Unity blendshape weights run 0..100")]
        public float weightScale = 100;

        [Header("Head and eyes")]
        public Transform head;
        public Transform leftEye, rightEye;
        [Range(0, 2)] public float headAmount = 1;

        [Header("Rendered frames (serve --portrait)")]
        public Renderer portraitTarget;
        public Texture2D Portrait { get; private set; }

        [Header("Events")]
        public UnityEvent speakingStarted = new UnityEvent();
        public UnityEvent speakingStopped = new UnityEvent();
        public UnityEvent listeningStarted = new UnityEvent();
        public UnityEvent listeningStopped = new UnityEvent();
        public StateEvent stateChanged = new StateEvent();

        public BackchannelSession Session { get; private set; }
        public MotionFrame Current { get; private set; }
        public string State { get; private set; }

        AudioChunker ownVoice, partner;
        // audio waits here (the own voice comes from the audio thread) until LateUpdate chunks and sends it
        readonly AudioRing ownRing = new AudioRing(48000 * 2), partnerRing = new AudioRing(48000 * 2);
        float[] drained = new float[48000 * 2];
        volatile int ownChannels, ownRate, partnerChannels, partnerRate;
        readonly CancellationTokenSource destroyed = new CancellationTokenSource();
        byte[] flipped;
        BlendshapeMap map;
        int[][] shapeIndices;  // per face, per map target: the mesh's blendshape index (-1: none)
        Quaternion headRest, leftRest, rightRest;
        RenderedFrame pendingFrame;

        void Start()
        {
            if (link == null) link = BackchannelLink.Find();
            if (link == null) { Debug.LogError("Backchannel: no BackchannelLink in the scene"); enabled = false; return; }
            map = BuildMap();
            shapeIndices = new int[faces.Length][];
            for (int f = 0; f < faces.Length; f++) shapeIndices[f] = ShapeIndices(faces[f], map);
            if (head != null) headRest = head.localRotation;
            if (leftEye != null) leftRest = leftEye.localRotation;
            if (rightEye != null) rightRest = rightEye.localRotation;
            link.Client.Frame += OnFrame;
            Open();
        }

        void OnFrame(BackchannelSession session, RenderedFrame frame)
        {
            if (session.Name == sessionName) pendingFrame = frame;
        }

        /// <summary>Subscribe, then open through SessionOpener: it retries while the worker is away or restarting
        /// (this may run before the worker is up) and takes up the session if an earlier try's reply was lost.</summary>
        async void Open()
        {
            var style = new Dictionary<string, object> { { "smile", (double)smile }, { "expressiveness", (double)expressiveness } };
            var client = link.Client;
            var topics = portraitTarget != null ? new[] { "motion", "stats", "frame" } : new[] { "motion", "stats" };
            try
            {
                // kept by the client and restored on every (re)connection: its reply is not waited for
                Subscribe(client, topics);
                var session = await new SessionOpener(client, sessionName, new SessionOptions
                {
                    Generator = string.IsNullOrEmpty(generator) ? null : generator, Seed = seed, Style = style,
                }).Open(destroyed.Token);
                if (destroyed.IsCancellationRequested) client.End(session);  // destroyed while the reply was on its way
                else Session = session;
            }
            catch (OperationCanceledException) { }
            catch (Exception e)
            {
                Debug.LogError("Backchannel: cannot open session " + sessionName + ": " + e.Message);
            }
        }

        async void Subscribe(BackchannelClient client, string[] topics)
        {
            try { await client.Subscribe(new[] { sessionName }, topics); }
            catch (TimeoutException) { }  // no worker yet: sent again when one connects
            catch (Exception e) { Debug.LogWarning("Backchannel: subscribe " + sessionName + ": " + e.Message); }
        }

        BlendshapeMap BuildMap()
        {
            switch (names)
            {
                case RigNames.Vrm0: return BlendshapeMap.Vrm0;
                case RigNames.Vrm1: return BlendshapeMap.Vrm1;
                case RigNames.Custom:
                    var table = new List<KeyValuePair<string, Dictionary<string, float>>>();
                    foreach (var c in customShapes)
                        table.Add(new KeyValuePair<string, Dictionary<string, float>>(c.shape, new Dictionary<string, float> { { c.arkit, c.weight } }));
                    return BlendshapeMap.FromTable("custom", table);
                default: return BlendshapeMap.Arkit;
            }
        }

        /// <summary>Each target's blendshape on this mesh, matched without regard to case (ARKit rigs name them
        /// EyeBlinkLeft or eyeBlinkLeft) and to a prefix before the last '.' (Blender exports "Body.JawOpen").</summary>
        static int[] ShapeIndices(SkinnedMeshRenderer face, BlendshapeMap map)
        {
            var byName = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
            var mesh = face.sharedMesh;
            for (int i = 0; mesh != null && i < mesh.blendShapeCount; i++)
            {
                var name = mesh.GetBlendShapeName(i);
                byName[name] = i;
                byName[name.Substring(name.LastIndexOf('.') + 1)] = i;
            }
            var indices = new int[map.Targets.Length];
            for (int j = 0; j < indices.Length; j++)
            {
                int index;
                indices[j] = byName.TryGetValue(map.Targets[j], out index) ? index : -1;
            }
            return indices;
        }

        // --- audio: called from the audio thread (AudioSourceTap) or the main thread (MicrophoneCapture) --------------

        /// <summary>Any thread, no allocation: into a ring that LateUpdate drains (what does not fit is dropped whole).</summary>
        public void PushOwnVoice(float[] data, int channels, int rate)
        {
            ownChannels = channels; ownRate = rate;
            ownRing.Write(data, 0, data.Length - data.Length % channels);
        }

        public void PushPartner(float[] data, int channels, int rate)
        {
            partnerChannels = channels; partnerRate = rate;
            partnerRing.Write(data, 0, data.Length - data.Length % channels);
        }

        /// <summary>The main thread: what the rings hold, chunked and queued on the client.</summary>
        void SendAudio(BackchannelSession session)
        {
            Drain(session, ownRing, ref ownVoice, "self", ownChannels, ownRate);
            Drain(session, partnerRing, ref partner, "other", partnerChannels, partnerRate);
        }

        void Drain(BackchannelSession session, AudioRing ring, ref AudioChunker chunker, string track, int channels, int rate)
        {
            int n = ring.Read(drained, 0, drained.Length);  // whole blocks: the writer puts whole frames in
            if (n == 0) return;
            if (session == null) return;  // not open yet: nothing to stamp it with
            if (chunker == null) chunker = session.Track(track, rate, channels);
            link.Client.Send(chunker.Push(drained, 0, n - n % channels));
        }

        // --- frames ---------------------------------------------------------------------------------------------

        void LateUpdate()
        {
            var session = Session;
            SendAudio(session);
            if (session == null) return;
            var frame = session.Buffer.Sample(link.Client.Now);
            if (frame != null)
            {
                Current = frame;
                Apply(frame);
                ChangeState(frame.State);
            }
            var rendered = pendingFrame;
            if (rendered != null && portraitTarget != null)
            {
                pendingFrame = null;
                ShowPortrait(rendered);
            }
        }

        void Apply(MotionFrame frame)
        {
            var weights = map.Apply(frame.Blendshapes);
            for (int f = 0; f < faces.Length; f++)
                for (int j = 0; j < weights.Length; j++)
                    if (shapeIndices[f][j] >= 0) faces[f].SetBlendShapeWeight(shapeIndices[f][j], weights[j] * weightScale);
            // protocol: +pitch looks down, +yaw turns to the avatar's left, +roll tilts to its left; Unity's axes are
            // left-handed, so (as VMC does) Euler(pitch, -yaw, roll) in degrees
            const float deg = 180f / (float)Math.PI;
            if (head != null)
                head.localRotation = headRest * Quaternion.Euler(frame.HeadRotation[0] * deg * headAmount,
                    -frame.HeadRotation[1] * deg * headAmount, frame.HeadRotation[2] * deg * headAmount);
            if (leftEye != null) leftEye.localRotation = leftRest * Quaternion.Euler(frame.Gaze[1] * deg, -frame.Gaze[0] * deg, 0);
            if (rightEye != null) rightEye.localRotation = rightRest * Quaternion.Euler(frame.Gaze[3] * deg, -frame.Gaze[2] * deg, 0);
        }

        void ChangeState(string state)
        {
            if (state == State) return;
            var was = State;
            State = state;
            if (was == "speaking") speakingStopped.Invoke();
            if (was == "listening") listeningStopped.Invoke();
            if (state == "speaking") speakingStarted.Invoke();
            if (state == "listening") listeningStarted.Invoke();
            stateChanged.Invoke(state);
        }

        void ShowPortrait(RenderedFrame frame)
        {
            // one texture, reused: LoadImage resizes it for a jpeg; a raw frame of another size needs a new one, and
            // the old one is destroyed (a Texture2D lives until it is, whatever refers to it)
            if (Portrait == null || (frame.Format != "jpeg" && (Portrait.width != frame.Width || Portrait.height != frame.Height)))
            {
                if (Portrait != null) Destroy(Portrait);
                Portrait = new Texture2D(frame.Width, frame.Height, TextureFormat.RGB24, false);
            }
            if (frame.Format == "jpeg") ImageConversion.LoadImage(Portrait, frame.Data);
            else
            {
                // rgb24 rows run top to bottom; a Texture2D's run bottom to top
                if (flipped == null || flipped.Length != frame.Data.Length) flipped = new byte[frame.Data.Length];
                int row = frame.Width * 3;
                for (int y = 0; y < frame.Height; y++) Buffer.BlockCopy(frame.Data, y * row, flipped, (frame.Height - 1 - y) * row, row);
                Portrait.LoadRawTextureData(flipped);
                Portrait.Apply();
            }
            portraitTarget.material.mainTexture = Portrait;
        }

        void OnDestroy()
        {
            destroyed.Cancel();  // an open still trying stops (or ends what it opened)
            if (Portrait != null) Destroy(Portrait);
            if (link == null || link.Client == null) return;
            link.Client.Frame -= OnFrame;
            var session = Session;
            if (session == null) return;
            SendAudio(session);
            foreach (var chunker in new[] { ownVoice, partner })
            {
                var last = chunker != null ? chunker.Flush() : null;
                if (last != null) link.Client.Send(last);
            }
            link.Client.End(session);
        }
    }
}
