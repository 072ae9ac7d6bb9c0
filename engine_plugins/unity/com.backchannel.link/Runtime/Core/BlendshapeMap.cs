// ARKit-52 weights -> another rig's shape weights: a small linear map, clipped to 0..1, with two rules for VRM
// (the same tables and rules as the worker's calibration/rigs.py, which tests/test_unity.py checks this against):
// a blink both eyes share goes to the both-eyes expression and each eye's carries only what it closes beyond the
// other, and the vowels together weigh as much as the strongest of them (VRM receivers add expressions up).
using System;
using System.Collections.Generic;
using System.Linq;

namespace Backchannel.Link
{
    public sealed class BlendshapeMap
    {
        public static readonly string[] ArkitNames =
        {
            "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft", "EyeWideLeft",
            "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight",
            "JawForward", "JawLeft", "JawRight", "JawOpen",
            "MouthClose", "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight",
            "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
            "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
            "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
            "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
            "MouthUpperUpLeft", "MouthUpperUpRight",
            "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
            "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
        };

        public readonly string Name;
        public readonly string[] Targets;
        readonly float[,] matrix;  // [52, targets]
        readonly int[] blinks;  // both, left, right; null: no blink rule
        readonly int[] vowels;

        BlendshapeMap(string name, string[] targets, float[,] matrix, string[] blinks, string[] vowels)
        {
            Name = name; Targets = targets; this.matrix = matrix;
            this.blinks = blinks == null ? null : blinks.Select(t => Array.IndexOf(targets, t)).ToArray();
            this.vowels = (vowels ?? new string[0]).Select(t => Array.IndexOf(targets, t)).ToArray();
        }

        /// <summary>A map from a table: target name -> {ARKit name: coefficient}.</summary>
        public static BlendshapeMap FromTable(string name, IList<KeyValuePair<string, Dictionary<string, float>>> table,
                                              string[] blinks = null, string[] vowels = null)
        {
            var m = new float[ArkitNames.Length, table.Count];
            for (int j = 0; j < table.Count; j++)
                foreach (var term in table[j].Value)
                {
                    int i = Array.IndexOf(ArkitNames, term.Key);
                    if (i < 0) throw new ArgumentException("rig " + name + ": " + term.Key + " is not an ARKit blendshape name");
                    m[i, j] = term.Value;
                }
            return new BlendshapeMap(name, table.Select(t => t.Key).ToArray(), m, blinks, vowels);
        }

        // before the maps: static fields are set in the order they are written
        static readonly Dictionary<string, string> Vrm1Names = new Dictionary<string, string>
        {
            { "A", "aa" }, { "I", "ih" }, { "U", "ou" }, { "E", "ee" }, { "O", "oh" }, { "Blink", "blink" },
            { "Blink_L", "blinkLeft" }, { "Blink_R", "blinkRight" }, { "Joy", "happy" }, { "Angry", "angry" },
            { "Sorrow", "sad" }, { "Fun", "relaxed" }, { "LookUp", "lookUp" }, { "LookDown", "lookDown" },
            { "LookLeft", "lookLeft" }, { "LookRight", "lookRight" },
        };

        public static readonly BlendshapeMap Arkit = Identity();
        public static readonly BlendshapeMap Vrm0 = FromTable("vrm0", Vrm0Table(), new[] { "Blink", "Blink_L", "Blink_R" }, new[] { "A", "I", "U", "E", "O" });
        public static readonly BlendshapeMap Vrm1 = FromTable("vrm1", Vrm1Table(), new[] { "blink", "blinkLeft", "blinkRight" }, new[] { "aa", "ih", "ou", "ee", "oh" });

        public static BlendshapeMap Named(string name)
        {
            switch (name)
            {
                case "arkit": return Arkit;
                case "vrm0": return Vrm0;
                case "vrm1": return Vrm1;
            }
            throw new ArgumentException("unknown rig " + name + "; arkit, vrm0 or vrm1 (or FromTable)");
        }

        /// <summary>52 ARKit weights -> one weight (0..1) per target.</summary>
        public float[] Apply(float[] arkit)
        {
            if (arkit.Length != ArkitNames.Length) throw new ArgumentException("52 ARKit weights expected");
            int k = Targets.Length;
            var result = new float[k];
            for (int j = 0; j < k; j++)
            {
                float sum = 0;
                for (int i = 0; i < arkit.Length; i++) sum += arkit[i] * matrix[i, j];
                result[j] = Math.Max(0f, Math.Min(1f, sum));
            }
            if (blinks != null)
            {
                float both = Math.Min(result[blinks[1]], result[blinks[2]]);
                result[blinks[0]] = both;
                result[blinks[1]] -= both;
                result[blinks[2]] -= both;
            }
            if (vowels.Length > 0)
            {
                float total = 0, strongest = 0;
                foreach (int j in vowels) { total += result[j]; strongest = Math.Max(strongest, result[j]); }
                foreach (int j in vowels) result[j] = result[j] * strongest / Math.Max(total, 1e-9f);
            }
            return result;
        }

        static BlendshapeMap Identity()
        {
            var m = new float[ArkitNames.Length, ArkitNames.Length];
            for (int i = 0; i < ArkitNames.Length; i++) m[i, i] = 1;
            return new BlendshapeMap("arkit", (string[])ArkitNames.Clone(), m, null, null);
        }

        static Dictionary<string, float> Terms(params object[] pairs)
        {
            var d = new Dictionary<string, float>();
            for (int i = 0; i < pairs.Length; i += 2)
            {
                var name = (string)pairs[i];
                float c = Convert.ToSingle(pairs[i + 1]);
                if (name.EndsWith("*")) { d[name.TrimEnd('*') + "Left"] = c; d[name.TrimEnd('*') + "Right"] = c; }
                else d[name] = c;
            }
            return d;
        }

        static KeyValuePair<string, Dictionary<string, float>> Row(string target, Dictionary<string, float> terms)
        {
            return new KeyValuePair<string, Dictionary<string, float>>(target, terms);
        }

        // calibration/rigs.py VRM0_TABLE ("Stem*" = both sides of a left/right pair)
        static List<KeyValuePair<string, Dictionary<string, float>>> Vrm0Table()
        {
            return new List<KeyValuePair<string, Dictionary<string, float>>>
            {
                Row("A", Terms("JawOpen", 1.0, "MouthFunnel", -0.4, "MouthPucker", -0.4)),
                Row("I", Terms("MouthStretch*", 0.6, "MouthSmile*", 0.3, "JawOpen", 0.2, "MouthPucker", -0.3)),
                Row("U", Terms("MouthPucker", 1.0, "MouthFunnel", 0.3, "JawOpen", -0.2)),
                Row("E", Terms("MouthStretch*", 0.4, "JawOpen", 0.5, "MouthLowerDown*", 0.2, "MouthFunnel", -0.3)),
                Row("O", Terms("MouthFunnel", 1.0, "JawOpen", 0.4, "MouthPucker", 0.2)),
                Row("Blink", Terms()),
                Row("Blink_L", Terms("EyeBlinkLeft", 1.0)),
                Row("Blink_R", Terms("EyeBlinkRight", 1.0)),
                Row("Joy", Terms("MouthSmile*", 0.5, "CheekSquint*", 0.2)),
                Row("Angry", Terms("BrowDown*", 0.4, "NoseSneer*", 0.2, "MouthPress*", 0.1)),
                Row("Sorrow", Terms("BrowInnerUp", 0.6, "MouthFrown*", 0.3)),
                Row("Fun", Terms("MouthSmile*", 0.3, "EyeSquint*", 0.2)),
                Row("LookUp", Terms("EyeLookUp*", 0.5)),
                Row("LookDown", Terms("EyeLookDown*", 0.5)),
                Row("LookLeft", Terms("EyeLookOutLeft", 0.5, "EyeLookInRight", 0.5)),
                Row("LookRight", Terms("EyeLookInLeft", 0.5, "EyeLookOutRight", 0.5)),
            };
        }

        static List<KeyValuePair<string, Dictionary<string, float>>> Vrm1Table()
        {
            var table = Vrm0Table().Select(r => Row(Vrm1Names[r.Key], r.Value)).ToList();
            table.Add(Row("surprised", Terms("EyeWide*", 0.4, "BrowInnerUp", 0.3, "BrowOuterUp*", 0.3)));
            return table;
        }
    }
}
