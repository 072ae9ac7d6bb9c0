// The partner's voice from a microphone (the player talking to the character), read from Unity's looping
// microphone clip each frame. Not on WebGL, where Unity has no Microphone class.
using UnityEngine;

namespace Backchannel.Link.Unity
{
    [AddComponentMenu("Backchannel/Microphone Capture (partner's voice)")]
    public sealed class MicrophoneCapture : MonoBehaviour
    {
        public BackchannelAvatar avatar;
        [Tooltip("empty: the default microphone")]
        public string device = "";
        public int rate = 16000;
        AudioClip clip;
        int read;

        void OnEnable()
        {
            if (avatar == null) avatar = GetComponent<BackchannelAvatar>();
            clip = Microphone.Start(string.IsNullOrEmpty(device) ? null : device, true, 1, rate);
            read = 0;
        }

        void Update()
        {
            if (clip == null || avatar == null) return;
            int position = Microphone.GetPosition(string.IsNullOrEmpty(device) ? null : device);
            int available = (position - read + clip.samples) % clip.samples;
            if (available == 0) return;
            var samples = new float[available * clip.channels];
            clip.GetData(samples, read);  // wraps around the loop's end by itself
            avatar.PushPartner(samples, clip.channels, clip.frequency);
            read = position;
        }

        void OnDisable()
        {
            Microphone.End(string.IsNullOrEmpty(device) ? null : device);
            clip = null;
        }
    }
}
