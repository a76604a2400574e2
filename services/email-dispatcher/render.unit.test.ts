import { describe, expect, it } from 'vitest';
import { htmlTags, render, renderSubject, substitutions, tagsOf } from './render.ts';

describe('merge tags', () => {
  it('fills {{field}}, escapes values in html only, and keeps subjects on one line', () => {
    const v = { name: '<Eve & "Co">', code: 'A1' };
    expect(render('Hi {{name}}, {{ code }} {{missing}}.', v)).toBe('Hi <Eve & "Co">, A1 .');
    expect(render('<p>{{name}}</p>', v, true)).toBe('<p>&lt;Eve &amp; &quot;Co&quot;&gt;</p>');
    expect(renderSubject('Re: {{x}}', { x: 'a\r\nBcc: evil@x.io' })).toBe('Re: a Bcc: evil@x.io');
  });

  it('gives SendGrid separate html tags with escaped substitutions', () => {
    expect(htmlTags('<b>{{name}}</b>')).toBe('<b>{{name|html}}</b>');
    expect(substitutions({ name: 'A&B', unused: 'x' }, { plain: ['name'], html: ['name'] })).toEqual({ '{{name}}': 'A&B', '{{name|html}}': 'A&amp;B' });
    // Only the spelling each place needs: a tag of the html alone has no plain substitution.
    expect(substitutions({ name: 'A&B', code: '1' }, { plain: ['code'], html: ['name'] })).toEqual({ '{{code}}': '1', '{{name|html}}': 'A&amp;B' });
    expect([...tagsOf('{{a}} {{ b }}', undefined, '{{a}}')]).toEqual(['a', 'b']);
  });
});
