// Chat templates (the Jinja `chat_template` of tokenizer_config.json) rendered with @huggingface/jinja.
import { Template } from '@huggingface/jinja';
import { TokenizerError, type ChatMessage } from './types.js';

export interface ChatOptions {
  /** end with the header of an assistant turn, so that the model writes the reply (default true) */
  addGenerationPrompt?: boolean;
  /** extra variables for the template (bos_token and eos_token are set from the tokenizer) */
  vars?: Record<string, unknown>;
}

/** The template text of a tokenizer_config.json `chat_template` (a string, or a list of named templates). */
export function pickTemplate(value: unknown, file: string, name = 'default'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === name) as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return named.template;
  }
  throw new TokenizerError(`${file}: field 'chat_template' is neither a string nor a list with a '${name}' template`);
}

export class ChatTemplate {
  private template: Template;
  constructor(
    readonly source: string,
    private specials: { bos_token?: string; eos_token?: string } = {},
    file = 'chat_template',
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new TokenizerError(`${file}: chat_template does not parse (${(e as Error).message.split('\n')[0]})`);
    }
  }

  render(messages: ChatMessage[], opts: ChatOptions = {}): string {
    return this.template.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      ...this.specials,
      ...opts.vars,
    });
  }
}
