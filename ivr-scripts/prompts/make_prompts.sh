#!/usr/bin/env bash
# Rigenera le registrazioni dei messaggi dai testi in <lingua>/prompts.toml (espeak-ng + sox)
# e la musica di attesa music/attesa.wav (sox). Il risultato è sempre identico a parità di testi.
# Regenerates the prompt recordings from <lang>/prompts.toml (espeak-ng + sox) and the music
# on hold music/attesa.wav (sox). The output is byte-for-byte repeatable.
#
# Uso / usage:
#   bash ivr-scripts/prompts/make_prompts.sh              # tutto / everything
#   bash ivr-scripts/prompts/make_prompts.sh benvenuto    # solo questi nomi / only these names
#   bash ivr-scripts/prompts/make_prompts.sh music        # solo la musica / only the music
#
# Formato / format: WAV 8000 Hz, mono, 16-bit PCM (what centralino accepts).
# Richiede / needs: espeak-ng, sox  (apt install espeak-ng sox)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
RATE=8000
SPEED=150
# espeak-ng voice per language folder / voce per cartella di lingua
declare -A VOICE=([it]=it [en]=en)

command -v espeak-ng >/dev/null || { echo "espeak-ng not found: apt install espeak-ng" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox not found: apt install sox" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# -D: no dither, -R: repeatable randomness, so the same text gives the same file.
SOX=(sox -D -R)
OUT_FMT=(-r "$RATE" -c 1 -b 16 -e signed-integer)

wanted() { # wanted NAME: true if NAME was asked for (or nothing was)
  [[ ${#ARGS[@]} -eq 0 ]] && return 0
  local a
  for a in "${ARGS[@]}"; do [[ $a == "$1" ]] && return 0; done
  return 1
}

say() { # say LANG NAME TEXT
  local lang=$1 name=$2 text=$3 out="$HERE/$1/$2.wav"
  if [[ -z $text ]]; then
    # Empty text: a short pause (e.g. the English "e", which is not spoken).
    "${SOX[@]}" -n "${OUT_FMT[@]}" "$out" trim 0 0.15
  else
    espeak-ng -v "${VOICE[$lang]}" -s "$SPEED" -w "$TMP/raw.wav" "$text"
    # Trim the synthesiser's silence at both ends, normalise, keep a short pause after.
    "${SOX[@]}" "$TMP/raw.wav" "${OUT_FMT[@]}" "$out" \
      silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse \
      norm -3 pad 0.05 0.15
  fi
}

prompts() { # prompts LANG: every name = "text" line of LANG/prompts.toml
  local lang=$1 line count=0
  local re='^[[:space:]]*([A-Za-z0-9_-]+)[[:space:]]*=[[:space:]]*"([^"\\]*)"[[:space:]]*(#.*)?$'
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ $re ]]; then
      if wanted "${BASH_REMATCH[1]}"; then
        say "$lang" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        count=$((count + 1))
      fi
    elif [[ ! $line =~ ^[[:space:]]*(#.*)?$ ]]; then
      echo "$lang/prompts.toml: cannot read this line, skipped: $line" >&2
    fi
  done <"$HERE/$lang/prompts.toml"
  echo "$lang: $count prompt(s)"
}

note() { # note DURATION FREQ FILE: one plucked note, gently faded out
  "${SOX[@]}" -n -r 16000 -c 1 -b 16 "$3" synth "$1" pluck "$2" fade q 0.005 "$1" 0.25 gain -4
}

music() { # ~24 s: C - Am - F - G, twice; soft pad, arpeggio, light reverb; loops cleanly.
  local -a chords=(
    "130.81 261.63 329.63 392.00"  # C
    "110.00 220.00 261.63 329.63"  # Am
    "87.31 174.61 220.00 261.63"   # F
    "98.00 196.00 246.94 293.66"   # G
    "130.81 261.63 329.63 392.00"  # C
    "110.00 220.00 261.63 329.63"  # Am
    "73.42 146.83 174.61 220.00"   # Dm
    "98.00 196.00 246.94 293.66"   # G
  )
  local -a pads=() arps=()
  local i=0 n=0 chord bass r t f o
  for chord in "${chords[@]}"; do
    read -r bass r t f <<<"$chord"
    o=$(awk "BEGIN { print $r * 2 }")
    "${SOX[@]}" -r 16000 -c 4 -n -b 16 "$TMP/pad$i.wav" \
      synth 3 sine "$bass" sine "$r" sine "$t" sine "$f" remix - fade q 0.6 3 0.8 gain -9
    pads+=("$TMP/pad$i.wav")
    for f in "$r" "$t" "$f" "$o" "$f" "$t"; do
      n=$((n + 1))
      note 0.5 "$f" "$TMP/n$n.wav"
      arps+=("$TMP/n$n.wav")
    done
    i=$((i + 1))
  done
  "${SOX[@]}" "${pads[@]}" "$TMP/pad.wav"
  # Soften the plucks: keep their body, drop the bright overtones.
  "${SOX[@]}" "${arps[@]}" "$TMP/arp.wav" lowpass 1400 lowpass 1400
  "${SOX[@]}" -m "$TMP/pad.wav" "$TMP/arp.wav" "${OUT_FMT[@]}" "$HERE/music/attesa.wav" \
    lowpass 2500 reverb 40 50 60 rate "$RATE" fade q 0.5 24 0.8 norm -9
  echo "music: music/attesa.wav"
}

ARGS=("$@")
mkdir -p "$HERE/it" "$HERE/en" "$HERE/music"
if [[ ${#ARGS[@]} -eq 1 && ${ARGS[0]} == music ]]; then
  music
  exit 0
fi
prompts it
prompts en
if [[ ${#ARGS[@]} -eq 0 ]]; then
  music
fi
