// The avatar's own voice: put this next to the AudioSource that plays the character's dialogue. Unity calls
// OnAudioFilterRead on its audio thread with what the source plays (after its effects), interleaved; it goes into the
// avatar's ring buffer (no lock, no allocation) and the avatar chunks and sends it on the main thread.
using UnityEngine;

namespace Backchannel.Link.Unity
{
    [AddComponentMenu("Backchannel/Audio Source Tap (avatar's voice)")]
    [RequireComponent(typeof(AudioSource))]
    public sealed class AudioSourceTap : MonoBehaviour
    {
        public BackchannelAvatar avatar;
        [Tooltip("silence the source locally (the worker still hears it)")]
        public bool muteLocally = false;
        int rate;
        // a plain reference for the audio thread: UnityEngine.Object's == and != call into the engine, which only
        // the main thread may do
        object target;

        void Awake()
        {
            rate = AudioSettings.outputSampleRate;  // not callable from the audio thread
            if (avatar == null) avatar = GetComponentInParent<BackchannelAvatar>();
            target = avatar;
        }

        void OnDestroy() { target = null; }

        void OnAudioFilterRead(float[] data, int channels)
        {
            var to = target as BackchannelAvatar;  // a type test, not Unity's overloaded comparison
            if (!ReferenceEquals(to, null)) to.PushOwnVoice(data, channels, rate);
            if (muteLocally) System.Array.Clear(data, 0, data.Length);
        }
    }
}
