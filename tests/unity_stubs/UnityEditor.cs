// Stand-ins for the UnityEditor types the package's Editor scripts use (see UnityEngine.cs: compiled, never run).
using System;
using UnityEngine;

namespace UnityEditor
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class MenuItem : Attribute
    {
        public MenuItem(string itemName) { }
        public MenuItem(string itemName, bool isValidateFunction) { }
    }

    public static class Selection { public static GameObject activeGameObject { get { return null; } } }

    public static class Undo { public static T AddComponent<T>(GameObject gameObject) where T : Component { return null; } }

    public static class EditorUtility
    {
        public static bool DisplayDialog(string title, string message, string ok) { return true; }
    }
}
