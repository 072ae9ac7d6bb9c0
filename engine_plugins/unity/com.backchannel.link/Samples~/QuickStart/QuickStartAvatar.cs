// Quick Start sample: put this on a character that has a face mesh (ARKit / Perfect Sync or VRM blendshapes) and
// an AudioSource playing its dialogue; press Play with `backchannel serve --ws 127.0.0.1:8765` running. It adds
// the Link, the Avatar and the audio tap, and the microphone as the partner's voice, then logs state changes.
using UnityEngine;
using Backchannel.Link.Unity;

public sealed class QuickStartAvatar : MonoBehaviour
{
    public SkinnedMeshRenderer face;
    public RigNames names = RigNames.Arkit;
    public Transform head;
    public bool microphoneIsThePartner = true;

    void Awake()
    {
        if (BackchannelLink.Find() == null) gameObject.AddComponent<BackchannelLink>();
        var avatar = gameObject.AddComponent<BackchannelAvatar>();
        avatar.sessionName = "quickstart-" + name;
        if (face != null) avatar.faces = new[] { face };
        avatar.names = names;
        avatar.head = head;
        avatar.stateChanged.AddListener(state => Debug.Log(name + " is " + state));
        if (GetComponent<AudioSource>() != null) gameObject.AddComponent<AudioSourceTap>().avatar = avatar;
        if (microphoneIsThePartner) gameObject.AddComponent<MicrophoneCapture>().avatar = avatar;
    }
}
