// The avatar's own voice: put this next to the AudioSource that plays the character's dialogue. Unity calls
// OnAudioFilterRead on its audio thread with what the source plays (after its effects), interleaved.
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

        void Awake()
        {
            rate = AudioSettings.outputSampleRate;  // not callable from the audio thread
            if (avatar == null) avatar = GetComponentInParent<BackchannelAvatar>();
        }

        void OnAudioFilterRead(float[] data, int channels)
        {
            if (avatar != null) avatar.PushOwnVoice(data, channels, rate);
            if (muteLocally) System.Array.Clear(data, 0, data.Length);
        }
    }
}
