// One avatar: opens its session, streams its voice (AudioSourceTap) and its partner's (MicrophoneCapture) to the
// worker, and each frame applies the session's motion, interpolated to the engine's frame rate, to blendshapes
// (through a name map), head and eye transforms, and a texture (rendered portrait frames); raises events when it
// starts or stops speaking and listening.
using System;
using System.Collections.Generic;
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
        readonly object audioGate = new object();
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
            link.Client.Frame += (session, frame) => { if (session.Name == sessionName) pendingFrame = frame; };
            Open();
        }

        async void Open()
        {
            var style = new Dictionary<string, object> { { "smile", (double)smile }, { "expressiveness", (double)expressiveness } };
            try
            {
                var topics = portraitTarget != null ? new[] { "motion", "stats", "frame" } : new[] { "motion", "stats" };
                await link.Client.Subscribe(new[] { sessionName }, topics);
                Session = await link.Client.Open(sessionName, new SessionOptions
                {
                    Generator = string.IsNullOrEmpty(generator) ? null : generator, Seed = seed, Style = style,
                });
            }
            catch (Exception e)
            {
                Debug.LogError("Backchannel: cannot open session " + sessionName + ": " + e.Message);
            }
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

        public void PushOwnVoice(float[] data, int channels, int rate) { Push(ref ownVoice, "self", data, channels, rate); }

        public void PushPartner(float[] data, int channels, int rate) { Push(ref partner, "other", data, channels, rate); }

        void Push(ref AudioChunker chunker, string track, float[] data, int channels, int rate)
        {
            var session = Session;
            if (session == null) return;  // not open yet: nothing to stamp it with
            lock (audioGate)
            {
                if (chunker == null) chunker = session.Track(track, rate, channels);
                link.Client.Send(chunker.Push(data, 0, data.Length - data.Length % channels));
            }
        }

        // --- frames ---------------------------------------------------------------------------------------------

        void LateUpdate()
        {
            var session = Session;
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
            if (Portrait == null || Portrait.width != frame.Width || Portrait.height != frame.Height)
                Portrait = new Texture2D(frame.Width, frame.Height, TextureFormat.RGB24, false);
            if (frame.Format == "jpeg") ImageConversion.LoadImage(Portrait, frame.Data);
            else
            {
                // rgb24 rows run top to bottom; a Texture2D's run bottom to top
                var flipped = new byte[frame.Data.Length];
                int row = frame.Width * 3;
                for (int y = 0; y < frame.Height; y++) Buffer.BlockCopy(frame.Data, y * row, flipped, (frame.Height - 1 - y) * row, row);
                Portrait.LoadRawTextureData(flipped);
                Portrait.Apply();
            }
            portraitTarget.material.mainTexture = Portrait;
        }

        void OnDestroy()
        {
            var session = Session;
            if (session == null || link == null || link.Client == null) return;
            lock (audioGate)
            {
                foreach (var chunker in new[] { ownVoice, partner })
                {
                    var last = chunker != null ? chunker.Flush() : null;
                    if (last != null) link.Client.Send(last);
                }
            }
            link.Client.End(session);
        }
    }
}
