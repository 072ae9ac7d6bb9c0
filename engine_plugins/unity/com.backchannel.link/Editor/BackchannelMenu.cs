// Editor menu items: set up the selected character in one step, and open the worker's live viewer page.
using UnityEditor;
using UnityEngine;
using Backchannel.Link.Unity;

namespace Backchannel.Link.Editor
{
    public static class BackchannelMenu
    {
        [MenuItem("GameObject/Backchannel/Make Talking Avatar", false)]
        static void MakeAvatar()
        {
            var go = Selection.activeGameObject;
            if (go == null)
            {
                EditorUtility.DisplayDialog("Backchannel", "Select the character (the object with its face mesh) first.", "OK");
                return;
            }
            if (Object.FindObjectOfType<BackchannelLink>() == null) Undo.AddComponent<BackchannelLink>(go);
            var avatar = go.GetComponent<BackchannelAvatar>();  // == null, not ??: Unity's missing objects only compare equal to null
            if (avatar == null) avatar = Undo.AddComponent<BackchannelAvatar>(go);
            if (avatar.faces.Length == 0)
            {
                var face = go.GetComponent<SkinnedMeshRenderer>();
                if (face != null) avatar.faces = new[] { face };
            }
            if (go.GetComponent<AudioSource>() != null && go.GetComponent<AudioSourceTap>() == null) Undo.AddComponent<AudioSourceTap>(go);
        }

        [MenuItem("Window/Backchannel/Open Live Viewer")]
        static void OpenViewer()
        {
            var link = Object.FindObjectOfType<BackchannelLink>();
            var url = link != null ? link.url : "ws://127.0.0.1:8765/";
            var token = link != null && !string.IsNullOrEmpty(link.doorToken)
                ? (url.Contains("?") ? "&" : "?") + "token=" + System.Uri.EscapeDataString(link.doorToken) : "";
            Application.OpenURL("http" + url.Substring(2) + token);  // the page passes ?token= on to its WebSocket
        }
    }
}
