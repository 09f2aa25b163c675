/* Internal: GDCM's codec messages into libich's log (codec_messages.c).
 * Between enter and leave, on the calling thread, the libjpeg and OpenJPEG
 * handlers GDCM sets up log through ich_log() instead of printing. */
#ifndef ICH_INTERNAL_CODEC_MESSAGES_H
#define ICH_INTERNAL_CODEC_MESSAGES_H

#ifdef __cplusplus
extern "C" {
#endif

void ich_codec_messages_enter(void);
void ich_codec_messages_leave(void);

#ifdef __cplusplus
}
#endif
#endif
